#!/usr/bin/env python3
"""A flood of bogus staff sign-ins against a running server, for docs/BENCHMARKS.md.

`--concurrency` threads each send `POST /api/v1/admin/sessions` with a random username and
password, back to back, for `--seconds`, over keep-alive connections. With `--spread`, each
request names a different client in X-Forwarded-For (the server must list 127.0.0.1 in
trusted_proxies), as a flood from many addresses would look; without it, every request comes
from one address. Meanwhile the server's resident memory is sampled from /proc (`--pid`), and
the peak is read from VmHWM at the end. Prints the statuses counted and the memory.

Run `healthcode loadgen --scenario open --rate R` beside it for the holders' latency.
"""

import argparse
import collections
import http.client
import json
import os
import random
import threading
import time


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--spread", action="store_true")
    p.add_argument("--pid", type=int, required=True)
    a = p.parse_args()

    counts = collections.Counter()
    lock = threading.Lock()
    stop = time.monotonic() + a.seconds

    def worker(n):
        rnd = random.Random(n)
        conn = http.client.HTTPConnection(a.host, a.port, timeout=30)
        while time.monotonic() < stop:
            body = json.dumps(
                {"username": f"guess-{rnd.getrandbits(40):x}", "password": f"pw-{rnd.getrandbits(64):x}"}
            )
            headers = {"content-type": "application/json"}
            if a.spread:
                headers["x-forwarded-for"] = f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
            try:
                conn.request("POST", "/api/v1/admin/sessions", body, headers)
                r = conn.getresponse()
                r.read()
                status = r.status
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection(a.host, a.port, timeout=30)
                status = "error"
            with lock:
                counts[status] += 1

    before = rss_kib(a.pid, "VmRSS")
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(a.concurrency)]
    for t in threads:
        t.start()
    samples = []
    while any(t.is_alive() for t in threads):
        samples.append(rss_kib(a.pid, "VmRSS"))
        time.sleep(0.2)
    for t in threads:
        t.join()
    total = sum(counts.values())
    print(f"{a.concurrency} concurrent for {a.seconds:.0f} s{' (spread over addresses)' if a.spread else ''}: "
          f"{total} sign-ins, {total / a.seconds:.0f}/s, statuses {dict(sorted(counts.items(), key=str))}")
    print(f"server RSS before {before / 1024:.1f} MiB, highest sampled {max(samples) / 1024:.1f} MiB, "
          f"after {rss_kib(a.pid, 'VmRSS') / 1024:.1f} MiB, peak since start (VmHWM) {rss_kib(a.pid, 'VmHWM') / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
