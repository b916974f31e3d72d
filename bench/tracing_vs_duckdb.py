#!/usr/bin/env python3
"""Exposure tracing: healthcode's engine against DuckDB's self-join, on the same check-ins.

Reads the CSV files `healthcode simulate --csv DIR` writes (venues, check-ins, cases) and the
contacts `healthcode trace --export FILE` found, converts the check-ins to Parquet (not timed),
runs the equivalent self-join in DuckDB with 2 threads over the Parquet file for the same cases,
times it, and checks that both produce the same contact set (case, holder, venue, contact start,
grade, overlap in whole minutes).

    pip install duckdb
    python3 bench/tracing_vs_duckdb.py --csv DIR --contacts contacts.csv [--policy crates/policy/default-policy.toml]
"""

import argparse
import csv
import os
import sys
import time
import tomllib

import duckdb


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True, help="the directory `healthcode simulate --csv` wrote")
    ap.add_argument("--contacts", required=True, help="the file `healthcode trace --export` wrote")
    ap.add_argument("--policy", default="crates/policy/default-policy.toml")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="timed runs; the best and all are reported")
    args = ap.parse_args()

    with open(args.policy, "rb") as f:
        tracing = tomllib.load(f)["tracing"]
    days_before = tracing["infectious_days_before_onset"]
    close_minutes = tracing["close_overlap_minutes"]
    close = set(tracing["close_categories"])
    dwell = tracing["dwell_minutes"]
    max_stay = tracing.get("max_stay_minutes", 720)

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute("SET enable_progress_bar = false")
    parquet = os.path.join(args.csv, "checkins.parquet")
    if not os.path.exists(parquet):
        t = time.perf_counter()
        con.execute(
            f"""COPY (SELECT * FROM read_csv('{os.path.join(args.csv, 'checkins.csv')}',
                   columns = {{'holder': 'VARCHAR', 'venue': 'BIGINT', 'at': 'BIGINT', 'out': 'BIGINT'}}, header = true))
                TO '{parquet}' (FORMAT parquet)"""
        )
        print(f"wrote {parquet} in {time.perf_counter() - t:.1f} s (not timed below)")
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{parquet}')").fetchone()[0]
    size = os.path.getsize(parquet)
    con.execute(
        f"""CREATE TEMP TABLE venues AS SELECT * FROM read_csv('{os.path.join(args.csv, 'venues.csv')}', header = true,
            columns = {{'venue': 'BIGINT', 'category': 'VARCHAR'}})"""
    )
    con.execute("CREATE TEMP TABLE policy (category VARCHAR, dwell BIGINT, close BOOLEAN)")
    con.executemany(
        "INSERT INTO policy VALUES (?, ?, ?)", [(c, m, c in close) for c, m in dwell.items()]
    )
    con.execute(
        f"""CREATE TEMP TABLE cases AS
            SELECT case_id, holder, onset - {days_before} * 86400 AS win_from, confirmed AS win_until
            FROM read_csv('{os.path.join(args.csv, 'cases.csv')}', header = true,
                 columns = {{'case_id': 'BIGINT', 'holder': 'VARCHAR', 'onset': 'BIGINT', 'confirmed': 'BIGINT'}})"""
    )
    wanted = sorted({int(r["case_id"]) for r in csv.DictReader(open(args.contacts))})
    con.execute("CREATE TEMP TABLE wanted (case_id BIGINT)")
    con.executemany("INSERT INTO wanted VALUES (?)", [(c,) for c in wanted])

    query = f"""
    WITH pres AS (
        SELECT c.holder, c.venue, c.at AS s,
               LEAST(CASE WHEN c.out IS NOT NULL AND c.out > c.at THEN c.out ELSE c.at + p.dwell * 60 END,
                     c.at + {max_stay} * 60) AS e,
               p.close
        FROM read_parquet('{parquet}') c JOIN venues v USING (venue) JOIN policy p USING (category)
    ),
    casep AS (
        SELECT k.case_id, k.holder AS case_holder, p.venue, p.close,
               GREATEST(p.s, k.win_from) AS s, LEAST(p.e, k.win_until) AS e
        FROM pres p JOIN cases k ON p.holder = k.holder JOIN wanted USING (case_id)
        WHERE LEAST(p.e, k.win_until) > GREATEST(p.s, k.win_from)
    ),
    pairs AS (
        SELECT cp.case_id, o.holder, o.venue, o.s AS contact_start, cp.close,
               LEAST(o.e, cp.e) - GREATEST(o.s, cp.s) AS overlap
        FROM casep cp JOIN pres o
          ON o.venue = cp.venue AND o.s < cp.e AND o.e > cp.s AND o.holder <> cp.case_holder
    )
    SELECT case_id, holder, venue, contact_start,
           CASE WHEN bool_or(close) AND max(overlap) >= {close_minutes} * 60 THEN 'close' ELSE 'same-place' END AS grade,
           max(overlap) // 60 AS overlap_minutes
    FROM pairs GROUP BY case_id, holder, venue, contact_start
    """
    times = []
    result = None
    for _ in range(args.runs):
        t = time.perf_counter()
        result = con.execute(query).fetchall()
        times.append(time.perf_counter() - t)
    duck = {(int(a), b, int(c), int(d), e, int(f)) for a, b, c, d, e, f in result}
    ours = {
        (int(r["case_id"]), r["holder"], int(r["venue"]), int(r["contact_start"]), r["grade"], int(r["overlap_minutes"]))
        for r in csv.DictReader(open(args.contacts))
    }
    print(f"check-ins: {rows:,} in {parquet} ({size / 1e6:.0f} MB); cases: {len(wanted)}; threads: {args.threads}")
    print(f"DuckDB {duckdb.__version__} self-join: best {min(times) * 1000:.0f} ms of {[round(x * 1000) for x in times]} ms")
    print(f"contacts: DuckDB {len(duck):,}, healthcode {len(ours):,}, same set: {duck == ours}")
    if duck != ours:
        only_d = sorted(duck - ours)[:5]
        only_o = sorted(ours - duck)[:5]
        print(f"  only DuckDB: {only_d}\n  only healthcode: {only_o}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
