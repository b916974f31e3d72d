//! Check-ins: idempotent batches, reads by venue and holder, the inbox merge, whole-period
//! scans and bulk loads.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::*;

pub async fn checkins_are_idempotent_and_found_by_venue_and_holder<H: Harness>(h: &H) {
    let s = h.store();
    let mall = venue(s, "Mall", VenueCategory::Mall).await;
    let clinic = venue(s, "Clinic", VenueCategory::Clinic).await;
    let dm = s.insert_device(mall.id, "gate", &[1; 32]).await.unwrap();
    let dc = s.insert_device(clinic.id, "door", &[2; 32]).await.unwrap();
    // Three days of scans so that day-partitioned backends span partitions.
    let mut batch = Vec::new();
    for i in 0..300i64 {
        let (venue, device) = if i % 3 == 0 {
            (clinic.id, dc.id)
        } else {
            (mall.id, dm.id)
        };
        batch.push(CheckIn {
            holder: hid((i % 7) as u8),
            venue,
            device,
            seq: i,
            at: T + Duration::minutes(i * 15),
            out: (i % 2 == 0).then(|| T + Duration::minutes(i * 15 + 40)),
        });
    }
    assert_eq!(s.insert_checkins(&batch).await.unwrap(), 300);
    // A device re-sends the first 100 and 10 new ones: only the new ones count.
    let mut again = batch[..100].to_vec();
    for i in 300..310i64 {
        again.push(CheckIn {
            holder: hid(1),
            venue: mall.id,
            device: dm.id,
            seq: i,
            at: T + Duration::minutes(i * 15),
            out: None,
        });
    }
    assert_eq!(s.insert_checkins(&again).await.unwrap(), 10);
    assert_eq!(s.insert_checkins(&[]).await.unwrap(), 0);
    let day2 = T + Duration::days(1);
    let at_clinic = s
        .checkins_at_venue(clinic.id, day2, day2 + Duration::days(1))
        .await
        .unwrap();
    let expected: Vec<&CheckIn> = batch
        .iter()
        .filter(|c| c.venue == clinic.id && c.at >= day2 && c.at < day2 + Duration::days(1))
        .collect();
    assert_eq!(at_clinic.len(), expected.len());
    assert!(at_clinic.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(&at_clinic[0], expected[0]);
    let of_holder = s
        .checkins_of_holder(&hid(3), T, T + Duration::days(10))
        .await
        .unwrap();
    assert_eq!(
        of_holder.len(),
        batch.iter().filter(|c| c.holder == hid(3)).count()
    );
    assert!(of_holder.iter().all(|c| c.holder == hid(3)));
    // The range is half-open.
    let first = &batch[0];
    assert_eq!(
        s.checkins_at_venue(first.venue, first.at, first.at + Duration::seconds(1))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        s.checkins_at_venue(first.venue, first.at - Duration::seconds(1), first.at)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn checkins_survive_the_merge_and_stay_unique<H: Harness>(h: &H) {
    let s = h.store();
    let scan = |i: i64| numbered_scan(i, Duration::minutes(1));
    let first: Vec<CheckIn> = (0..500).map(scan).collect();
    assert_eq!(s.insert_checkins(&first).await.unwrap(), 500);
    h.flush_checkins().await;
    // Re-sent after the merge: recognised against the indexed table.
    let again: Vec<CheckIn> = (400..600).map(scan).collect();
    assert_eq!(s.insert_checkins(&again).await.unwrap(), 100);
    // Part merged, part in the inbox: a range read sees each scan once.
    let all = s
        .checkins_at_venue(VenueId(1), T, T + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(all.len(), (0..600).filter(|i| i % 3 == 1).count());
    // A crash between a merge's copy and its delete leaves rows in both places.
    h.flush_checkins().await;
    h.duplicate_into_inbox(50).await;
    let mine = s
        .checkins_of_holder(&hid(0), T, T + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(mine.len(), 120);
    let report = s.purge(T + Duration::minutes(100)).await.unwrap();
    assert_eq!(report.checkins, 100, "rows in both places are counted once");
    h.flush_checkins().await;
    let left = s
        .checkins_at_venue(VenueId(0), T, T + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(left.len(), (100..600).filter(|i| i % 3 == 0).count());
}

pub async fn a_scan_reads_each_checkin_in_range_once<H: Harness>(h: &H) {
    let s = h.store();
    let scan = |i: i64, at: OffsetDateTime| CheckIn {
        holder: hid((i % 7) as u8),
        venue: VenueId(i % 4),
        device: DeviceId(10 + i % 4),
        seq: i,
        at,
        out: (i % 3 == 0).then(|| at + Duration::minutes(20)),
    };
    // Past hours (indexed at once on PostgreSQL; merged on SQLite), some also left in the inbox
    // as a crash between a merge's copy and its delete would leave them.
    let past: Vec<CheckIn> = (0..300).map(|i| scan(i, T + Duration::minutes(7 * i))).collect();
    assert_eq!(s.insert_checkins(&past).await.unwrap(), 300);
    h.flush_checkins().await;
    h.duplicate_into_inbox(40).await;
    // The current hour (unindexed on PostgreSQL, in the inbox on SQLite), sent twice.
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let recent: Vec<CheckIn> = (300..340)
        .map(|i| scan(i, now - Duration::seconds(340 - i)))
        .collect();
    s.insert_checkins(&recent).await.unwrap();
    s.insert_checkins(&recent).await.unwrap();
    let read = |from: OffsetDateTime, to: OffsetDateTime| async move {
        let mut got: Vec<CheckIn> = Vec::new();
        let mut batches = 0;
        let n = s
            .scan_checkins(from, to, &mut |b: Vec<CheckIn>| {
                batches += 1;
                got.extend(b);
            })
            .await
            .unwrap();
        assert_eq!(n as usize, got.len());
        assert!(batches <= got.len(), "no empty batches");
        got.sort_by_key(|c| (c.device, c.seq));
        got
    };
    let key = |c: &CheckIn| (c.device, c.seq);
    // Arrivals in [from, to): the first at `from` is in, the one at `to` is not.
    let (from, to) = (past[10].at, past[250].at);
    let mut want: Vec<CheckIn> = past[10..250].to_vec();
    want.sort_by_key(key);
    assert_eq!(read(from, to).await, want);
    // Everything, each scan once.
    let mut all: Vec<CheckIn> = past.iter().chain(&recent).cloned().collect();
    all.sort_by_key(key);
    assert_eq!(read(T, now + Duration::hours(1)).await, all);
    // Nothing in an empty range.
    assert!(read(from, from).await.is_empty());
}

pub async fn a_bulk_load_is_read_once_after_the_flush<H: Harness>(h: &H) {
    let s = h.store();
    let scan = |i: i64| numbered_scan(i, Duration::minutes(13));
    // Several past hours, loaded twice (a load resumed after a failure sends some again).
    let rows: Vec<CheckIn> = (0..200).map(scan).collect();
    assert_eq!(s.load_checkins(&rows).await.unwrap(), 200);
    s.load_checkins(&rows[50..120]).await.unwrap();
    h.flush_checkins().await;
    let mut got = Vec::new();
    for v in 0..3 {
        got.extend(
            s.checkins_at_venue(VenueId(v), T, T + Duration::days(3))
                .await
                .unwrap(),
        );
    }
    got.sort_by_key(|c| c.seq);
    assert_eq!(got, rows);
    // Indexed now: sent again, nothing is new, and a later scan still goes in.
    assert_eq!(s.insert_checkins(&rows[..10]).await.unwrap(), 0);
    assert_eq!(s.insert_checkins(&[scan(500)]).await.unwrap(), 1);
    let mine = s
        .checkins_of_holder(&hid(0), T, T + Duration::days(10))
        .await
        .unwrap();
    assert_eq!(mine.len(), 41);
}
