//! The journal's writes, reads, retention and restarts, on a real SQLite file.

use super::*;

fn entry(seq: u64, frame: &str) -> Published {
    Published {
        seq,
        symbol: "BTCUSDT".into(),
        strategy: Arc::from("s"),
        frame: Frame::from(frame.to_string()),
        at: std::time::Instant::now(),
        offered: std::time::Instant::now(),
    }
}

fn keep_all() -> Retention {
    Retention {
        max_age: Duration::from_secs(365 * 86400),
        max_count: u64::MAX / 2,
    }
}

/// A publish the journal cannot commit in time (another process holds the database) is
/// answered as pending, with its key, never acked; once the database is free again the
/// signal is committed, and a retry by its key learns its `seq` without storing it again.
#[tokio::test]
async fn a_publish_the_journal_cannot_commit_in_time_is_pending() {
    use crate::hub::{Hub, PublishError};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigcast.db");
    let (journal, last) = Journal::open(&path, keep_all()).unwrap();
    let hub = Hub::with_journal(vec![], 8, journal, last);
    let lock = Connection::open(&path).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let signal = crate::strategy::Signal {
        side: crate::strategy::Side::Buy,
        symbol: "BTCUSDT".into(),
        price: 75000.0,
        timestamp: 1720000000,
        strategy: "external".into(),
        interval: String::new(),
        reason: String::new(),
    };
    let submitted = hub.submit(&signal, "alice", Some("k1")).unwrap();
    let within = Duration::from_millis(300);
    match hub.confirm(submitted, within).await {
        Err(PublishError::Pending { id, .. }) => assert_eq!(id, "k1"),
        other => panic!("expected pending, got {other:?}"),
    }
    lock.execute_batch("ROLLBACK").unwrap();
    let retry = hub.submit(&signal, "alice", Some("k1")).unwrap();
    let (seq, _) = hub.confirm(retry, Duration::from_secs(30)).await.unwrap();
    assert_eq!(seq, 1, "the first publish's seq; nothing stored twice");
    assert_eq!(hub.last_seq(), 1);
}

#[tokio::test]
async fn appends_are_read_back_in_order_and_numbering_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j/sigcast.db");
    let (journal, last) = Journal::open(&path, keep_all()).unwrap();
    assert_eq!(last, 0);
    for seq in 1..=5u64 {
        journal.append(
            crate::clock::unix_now() as i64,
            entry(seq, &format!("f{seq}")),
            (seq == 2).then_some("key-2"),
        );
    }
    journal.wait_flushed(5).await.unwrap();
    let (page, oldest) = journal.read(2, 5).await.unwrap();
    assert_eq!(oldest, Some(1));
    let seqs: Vec<u64> = page.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    assert_eq!(page[0].frame.as_str(), "f3");
    assert_eq!(&*page[0].symbol, "BTCUSDT");
    assert_eq!(
        journal.take_keys(),
        HashMap::new(),
        "none at the first open"
    );
    drop(journal);
    let (again, last) = Journal::open(&path, keep_all()).unwrap();
    assert_eq!(last, 5);
    assert_eq!(
        again.take_keys(),
        HashMap::from([("key-2".to_string(), 2)]),
        "publish keys survive a restart with their seq"
    );
}

/// Write-ahead: whatever a session receives is already committed, so it can be resumed,
/// and numbering after a crash starts above it.
#[tokio::test]
async fn signals_reach_the_ring_only_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigcast.db");
    let (journal, last) = Journal::open(&path, keep_all()).unwrap();
    let hub = crate::hub::Hub::with_journal(vec![], 256, journal, last);
    let mut ring = hub.subscribe();
    let signal = crate::strategy::Signal {
        side: crate::strategy::Side::Buy,
        symbol: "BTCUSDT".into(),
        price: 1.0,
        timestamp: 1,
        strategy: "s".into(),
        interval: "1m".into(),
        reason: String::new(),
    };
    for _ in 0..200 {
        hub.publish(&signal);
    }
    for want in 1..=200u64 {
        let got = tokio::time::timeout(Duration::from_secs(5), ring.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.seq, want, "in order");
        let journal = hub.journal().unwrap();
        assert!(journal.flushed() >= got.seq, "sent before it was committed");
        // A fresh connection sees it on disk.
        let (page, _) = journal.read(got.seq - 1, got.seq).await.unwrap();
        assert_eq!(page.len(), 1);
    }
}

#[tokio::test]
async fn retention_by_age_keeps_the_newest_row_so_numbering_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigcast.db");
    let (journal, _) = Journal::open(&path, keep_all()).unwrap();
    for seq in 1..=3u64 {
        journal.append(0, entry(seq, "old"), None); // 1970: far past any max_age
    }
    journal.wait_flushed(3).await.unwrap();
    drop(journal); // the writer applies retention as it stops
    let (journal, last) = Journal::open(&path, keep_all()).unwrap();
    assert_eq!(last, 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (page, oldest) = journal.read(0, 3).await.unwrap();
        if page.len() == 1 {
            assert_eq!(oldest, Some(3));
            break;
        }
        assert!(Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn retention_by_count_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigcast.db");
    let (journal, _) = Journal::open(&path, keep_all()).unwrap();
    for seq in 1..=10u64 {
        journal.append(0, entry(seq, "x"), None);
    }
    journal.wait_flushed(10).await.unwrap();
    prune_file(
        &path,
        Retention {
            max_age: Duration::from_secs(365 * 86400 * 100),
            max_count: 4,
        },
    )
    .unwrap();
    let (page, oldest) = journal.read(0, 10).await.unwrap();
    assert_eq!(oldest, Some(7));
    assert_eq!(page.len(), 4);
}

/// Once given the key, the writer seals what it journals, and the chain carries on across a
/// reopen (a restart) and a new key (a rotation): the whole journal verifies as one chain.
#[tokio::test]
async fn the_chain_carries_on_across_a_restart_and_a_rotation() {
    use crate::hub::proof::{self, KeyDir, verify::Verifier};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigcast.db");
    let keys = KeyDir::of(dir.path());
    let frame = |seq: u64| format!(r#"{{"type":"buy","is_test":false,"seq":{seq}}}"#);
    let now = crate::clock::unix_now() as i64;
    let (journal, _) = Journal::open(&path, keep_all()).unwrap();
    journal.append(now, entry(1, &frame(1)), None);
    journal.sign_with(keys.load_or_create().unwrap(), keys.public_keys().unwrap());
    for seq in 2..=3 {
        journal.append(now, entry(seq, &frame(seq)), None);
    }
    journal.wait_flushed(3).await.unwrap();
    drop(journal);
    let (journal, last) = Journal::open(&path, keep_all()).unwrap();
    keys.rotate().unwrap();
    journal.sign_with(keys.load_or_create().unwrap(), keys.public_keys().unwrap());
    for seq in last + 1..=5 {
        journal.append(now, entry(seq, &frame(seq)), None);
    }
    journal.wait_flushed(5).await.unwrap();
    let (page, _) = journal.read(0, 5).await.unwrap();
    assert!(
        proof::open(page[0].frame.as_str()).is_err(),
        "journaled before signing: {:?}",
        page[0]
    );
    assert_eq!(
        proof::open(page[1].frame.as_str()).unwrap().prev,
        proof::GENESIS
    );
    let published = journal.public_keys();
    let mut verifier = Verifier::new(&published, false);
    for p in &page[1..] {
        assert!(verifier.line(p.frame.as_str()).is_some(), "{}", p.frame);
    }
    let verdict = verifier.finish();
    assert!(verdict.passed() && verdict.chain_start, "{verdict}");
    assert_eq!(
        verdict.kids.len(),
        2,
        "signed before and after the rotation"
    );
}
