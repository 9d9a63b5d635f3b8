use super::verify::Verifier;
use super::*;

fn chain(dir: &std::path::Path) -> (Chain, KeySet) {
    let keys = KeyDir::of(dir);
    let signer = keys.load_or_create().unwrap();
    (
        Chain {
            prev: GENESIS,
            signer: signer.into(),
        },
        keys.public_keys().unwrap(),
    )
}

fn frame(seq: u64, price: f64) -> String {
    format!(
        r#"{{"type":"buy","content":{{"symbol":"BTCUSDT","price":{price:?},"timestamp":1720000000,"strategy":"s","interval":"1m","reason":"r, \"proof\":"}},"is_test":false,"seq":{seq}}}"#
    )
}

/// Five sealed frames, seq 1..=5.
fn sealed(chain: &mut Chain) -> Vec<String> {
    (1..=5)
        .map(|seq| chain.seal(&frame(seq, 75000.0 + seq as f64)).unwrap())
        .collect()
}

fn check(lines: &[String], keys: &KeySet, scoped: bool) -> verify::Verdict {
    let mut verifier = Verifier::new(keys, scoped);
    for line in lines {
        verifier.line(line);
    }
    verifier.finish()
}

fn named(verdict: &verify::Verdict) -> Vec<u64> {
    verdict.problems.iter().filter_map(|p| p.seq).collect()
}

#[test]
fn a_sealed_frame_opens_to_its_canonical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, keys) = chain(dir.path());
    let plain = frame(1, 75000.0);
    let text = chain.seal(&plain).unwrap();
    assert!(text.starts_with(&plain[..plain.len() - 1]));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["content"]["price"], 75000.0, "still the client contract");
    let opened = open(&text).unwrap();
    assert_eq!(opened.canonical, plain);
    assert_eq!(opened.prev, GENESIS);
    assert_eq!(opened.kid, keys.keys[0].kid);
    assert_eq!(hash_after(&text), chain.prev);
    assert_eq!(open(&plain), Err(ProofError::Missing));
}

#[test]
fn an_untouched_history_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, keys) = chain(dir.path());
    let mut lines = sealed(&mut chain);
    lines.insert(2, r#"{"type":"sell","content":{},"is_test":true}"#.into());
    let verdict = check(&lines, &keys, false);
    assert!(verdict.passed(), "{verdict}");
    assert_eq!(
        (verdict.signals, verdict.verified, verdict.skipped),
        (5, 5, 1)
    );
    assert!(verdict.chain_start);
    assert_eq!((verdict.first_seq, verdict.last_seq), (Some(1), Some(5)));
}

#[test]
fn every_kind_of_tampering_is_named_by_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, keys) = chain(dir.path());
    let lines = sealed(&mut chain);
    let other = tempfile::tempdir().unwrap();
    let (mut forger, _) = self::chain(other.path());
    forger.prev = hash_after(&lines[1]);
    let forged = forger.seal(&frame(3, 1.0)).unwrap();
    let cases: Vec<(&str, Vec<String>, Vec<u64>)> = vec![
        (
            "edit a price",
            {
                let mut l = lines.clone();
                l[2] = l[2].replace("75003.0", "75300.0");
                l
            },
            vec![3],
        ),
        (
            "back-date a signal",
            {
                let mut l = lines.clone();
                l[3] = l[3].replace("1720000000", "1710000000");
                l
            },
            vec![4],
        ),
        (
            "drop a signal",
            {
                let mut l = lines.clone();
                l.remove(2);
                l
            },
            vec![4],
        ),
        (
            "swap two signals",
            {
                let mut l = lines.clone();
                l.swap(1, 2);
                l
            },
            vec![3, 2],
        ),
        (
            "repeat a signal",
            {
                let mut l = lines.clone();
                l.insert(3, l[1].clone());
                l
            },
            vec![2],
        ),
        (
            "forge one with another key",
            {
                let mut l = lines.clone();
                l[2] = forged.clone();
                l
            },
            vec![3],
        ),
        (
            "claim the real key for a forged one",
            {
                let mut l = lines.clone();
                let theirs = open(&forged).unwrap();
                l[2] = forged.replace(&theirs.kid, &keys.keys[0].kid);
                l
            },
            vec![3],
        ),
        (
            "strip a proof",
            {
                let mut l = lines.clone();
                l[2] = open(&l[2]).unwrap().canonical;
                l
            },
            vec![3],
        ),
    ];
    for (what, tampered, seqs) in cases {
        let verdict = check(&tampered, &keys, false);
        assert!(!verdict.passed(), "{what}: passed");
        assert_eq!(
            named(&verdict)[..seqs.len().min(named(&verdict).len())],
            seqs[..],
            "{what}: {verdict}"
        );
    }
}

/// A signal that fails its check still holds its place: what comes after it is checked for
/// order and gaps against it, so every problem of a file is named, not just the first.
#[test]
fn after_a_failed_signature_the_next_gap_is_still_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, keys) = chain(dir.path());
    let mut lines = sealed(&mut chain);
    lines[2] = lines[2].replace("75003.0", "75300.0");
    lines.remove(3);
    let verdict = check(&lines, &keys, false);
    assert_eq!(named(&verdict), vec![3, 5], "{verdict}");
    assert!(
        verdict.to_string().contains("seq 4 is missing before it"),
        "{verdict}"
    );
    // Stripped of its proof, a signal holds its place too.
    let mut lines = sealed(&mut self::chain(dir.path()).0);
    lines[1] = open(&lines[1]).unwrap().canonical;
    lines.swap(2, 3);
    let verdict = check(&lines, &keys, false);
    assert_eq!(named(&verdict)[..2], [2, 4], "{verdict}");
}

#[test]
fn a_scoped_history_has_gaps_and_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (mut chain, keys) = chain(dir.path());
    let lines = sealed(&mut chain);
    let scoped = vec![lines[0].clone(), lines[2].clone(), lines[3].clone()];
    let verdict = check(&scoped, &keys, true);
    assert!(verdict.passed(), "{verdict}");
    assert_eq!(verdict.gaps, vec![(2, 2)]);
    assert!(verdict.to_string().contains("not checked across 1 gaps"));
    assert!(
        !check(&scoped, &keys, false).passed(),
        "a gap fails an unscoped check"
    );
}

#[test]
fn a_rotated_key_still_verifies_what_it_signed() {
    let dir = tempfile::tempdir().unwrap();
    let keydir = KeyDir::of(dir.path());
    let (mut chain, _) = chain(dir.path());
    let mut lines = sealed(&mut chain);
    let (old, new) = keydir.rotate().unwrap();
    assert_ne!(old, new);
    chain.signer = keydir.load_or_create().unwrap().into();
    lines.push(chain.seal(&frame(6, 1.0)).unwrap());
    let keys = keydir.public_keys().unwrap();
    assert_eq!(keys.keys[0].kid, new);
    assert!(keys.keys[0].current && !keys.keys[1].current);
    let verdict = check(&lines, &keys, false);
    assert!(verdict.passed(), "{verdict}");
    assert_eq!(verdict.kids.len(), 2);
}
