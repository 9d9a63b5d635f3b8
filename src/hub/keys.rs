//! Publish keys: a publisher's idempotency key for each publish, and the `seq` it was given.
//!
//! A publisher names a publish with an `id` (or the `Idempotency-Key` header); a retry that
//! names it again is answered with the first publish's `seq` and stores nothing. The key is
//! a hash of the publisher's `sub` and the `id`, so one publisher's ids never answer
//! another's, and the key is a fixed 64 hex characters whatever the two hold: safe as the
//! stream's `Nats-Msg-Id` in cluster mode, and as a journal column on a single node, where
//! it is committed with its signal and kept as long as the signal is.

use std::collections::HashMap;

/// Longest `id` a publisher may give.
pub const MAX_ID_LEN: usize = 128;

/// Checks a publisher's `id`: 1 to [`MAX_ID_LEN`] visible ASCII characters.
pub fn check_id(id: &str) -> Result<&str, String> {
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "id: expected 1 to {MAX_ID_LEN} visible ASCII characters (no spaces)"
        ));
    }
    Ok(id)
}

/// The key of publisher `sub`'s publish `id`.
pub fn key(sub: &str, id: &str) -> String {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
    hash.update(&(sub.len() as u64).to_be_bytes());
    hash.update(sub.as_bytes());
    hash.update(id.as_bytes());
    hash.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The keys given out on this node, with their `seq`: those still in the journal at start,
/// and those given since. Keys of signals the journal no longer holds are dropped now and
/// then, so the map stays as large as the journal's retention, no larger.
#[derive(Debug, Default)]
pub struct Keys {
    seqs: HashMap<String, u64>,
    /// Size at which keys older than the journal are next looked for.
    prune_at: usize,
}

/// Fewest keys worth a look for expired ones.
const PRUNE_FLOOR: usize = 1024;

impl Keys {
    pub fn new(seqs: HashMap<String, u64>) -> Self {
        let prune_at = (seqs.len() * 2).max(PRUNE_FLOOR);
        Keys { seqs, prune_at }
    }

    /// The `seq` a key was given, if it was.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.seqs.get(key).copied()
    }

    /// Records a key; `oldest` is the journal's oldest `seq`, below which keys are dropped.
    pub fn insert(&mut self, key: String, seq: u64, oldest: u64) {
        self.seqs.insert(key, seq);
        if self.seqs.len() >= self.prune_at {
            self.seqs.retain(|_, s| *s >= oldest);
            self.prune_at = (self.seqs.len() * 2).max(PRUNE_FLOOR);
        }
    }

    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_publishers_and_ids() {
        assert_eq!(key("alice", "1"), key("alice", "1"));
        assert_ne!(key("alice", "1"), key("bob", "1"));
        assert_ne!(key("ab", "c"), key("a", "bc"));
        assert_eq!(key("alice", "1").len(), 64);
    }

    #[test]
    fn ids_are_bounded_and_visible() {
        assert!(check_id("order-42").is_ok());
        assert!(check_id("").is_err());
        assert!(check_id("a b").is_err());
        assert!(check_id("line\nbreak").is_err());
        assert!(check_id(&"x".repeat(MAX_ID_LEN)).is_ok());
        assert!(check_id(&"x".repeat(MAX_ID_LEN + 1)).is_err());
    }

    #[test]
    fn keys_older_than_the_journal_go_once_the_map_doubles() {
        let mut keys = Keys::default();
        for seq in 1..=2000u64 {
            keys.insert(format!("k{seq}"), seq, seq.saturating_sub(100));
        }
        assert!(keys.len() < 2000, "pruned: {}", keys.len());
        assert_eq!(keys.get("k2000"), Some(2000));
        assert_eq!(keys.get("k1"), None, "older than the journal");
    }
}
