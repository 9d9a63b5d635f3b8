//! Checking signed signals as a client saved them (a `sigcast listen` output, a journal
//! export, a log of frames): every signature, and the chain from each `seq` to the next.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::{Hash, KeySet, Sealed, chain_hash, open};

/// What was found wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The line of the file, from 1.
    pub line: usize,
    pub seq: Option<u64>,
    pub what: String,
}

/// What a check of a file found.
#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    /// Journaled signals read (lines with a `seq`, not test signals).
    pub signals: usize,
    /// Of those, signed by a given key over exactly the bytes they hold.
    pub verified: usize,
    /// Lines that are no journaled signal (test signals, other messages, blank lines).
    pub skipped: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Whether the first signal starts its chain (the journal's first signed signal).
    pub chain_start: bool,
    /// The keys that signed what verified.
    pub kids: BTreeSet<String>,
    /// `seq` ranges absent between the first and last (inclusive).
    pub gaps: Vec<(u64, u64)>,
    pub problems: Vec<Problem>,
}

impl Verdict {
    /// Whether the file passed: no problem, and a signal at all.
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.verified > 0
    }
}

/// A signal that verified, for recomputing the track record from it.
#[derive(Debug, Clone)]
pub struct Verified {
    pub seq: u64,
    /// Its canonical bytes: the frame without its proof.
    pub canonical: String,
}

/// Checks lines one at a time. `scoped`: the file holds only the signals a scoped token
/// sees, so gaps in `seq` are expected: they are listed, not counted as problems, and the
/// chain is checked only between consecutive signals.
pub struct Verifier<'k> {
    keys: &'k KeySet,
    scoped: bool,
    line: usize,
    /// The last signal in order, and its hash when its signature held.
    anchor: Option<(u64, Option<Hash>)>,
    verdict: Verdict,
}

impl<'k> Verifier<'k> {
    pub fn new(keys: &'k KeySet, scoped: bool) -> Self {
        Verifier {
            keys,
            scoped,
            line: 0,
            anchor: None,
            verdict: Verdict::default(),
        }
    }

    /// Checks the next line; returns the signal when it verified.
    pub fn line(&mut self, text: &str) -> Option<Verified> {
        self.line += 1;
        let text = text.trim_end_matches(['\r', '\n']);
        let Some(seq) = journaled_seq(text) else {
            self.verdict.skipped += 1;
            return None;
        };
        let v = &mut self.verdict;
        v.signals += 1;
        v.first_seq.get_or_insert(seq);
        let sealed = open(text)
            .map_err(|e| self.problem(seq, e.to_string()))
            .ok();
        let hash = sealed.as_ref().and_then(|s| self.signature(seq, s));
        if !self.follows(seq, sealed.as_ref().map(|s| s.prev)) {
            return None;
        }
        // A signal whose signature failed still holds its place: the next is checked for
        // order and gaps against it (its hash, unknown, is not checked against).
        self.anchor = Some((seq, hash));
        self.verdict.last_seq = Some(seq);
        hash?;
        Some(Verified {
            seq,
            canonical: sealed?.canonical,
        })
    }

    /// The signal's chain hash when its signature holds by one of the keys; a problem
    /// otherwise.
    fn signature(&mut self, seq: u64, sealed: &Sealed) -> Option<Hash> {
        let hash = chain_hash(&sealed.prev, sealed.canonical.as_bytes());
        let Some(key) = self.keys.get(&sealed.kid) else {
            self.problem(
                seq,
                format!(
                    "signed by key {:?}, which is not among the keys given",
                    sealed.kid
                ),
            );
            return None;
        };
        if !key.verifies(&hash, &sealed.sig) {
            self.problem(
                seq,
                "the signature does not match its bytes: edited, or signed by another key".into(),
            );
            return None;
        }
        self.verdict.verified += 1;
        self.verdict.kids.insert(sealed.kid.clone());
        if self.verdict.verified == 1 && self.anchor.is_none() && self.verdict.problems.is_empty() {
            self.verdict.chain_start = sealed.prev == super::GENESIS;
        }
        Some(hash)
    }

    /// Whether `seq` (whose proof names `prev`) may follow the signal before it: a repeat or
    /// a step back is a problem and does not move the chain on; a gap, or a `prev` that is
    /// not the previous signal's hash, is a problem that does.
    fn follows(&mut self, seq: u64, prev: Option<Hash>) -> bool {
        let Some((last, last_hash)) = self.anchor else {
            return true;
        };
        if seq <= last {
            self.problem(
                seq,
                format!("comes after seq {last}: out of order or repeated"),
            );
            return false;
        }
        if seq == last + 1 {
            if let (Some(prev), Some(last_hash)) = (prev, last_hash)
                && prev != last_hash
            {
                self.problem(
                    seq,
                    format!("does not follow seq {last}: its prev is not that signal's hash"),
                );
            }
            return true;
        }
        self.verdict.gaps.push((last + 1, seq - 1));
        if !self.scoped {
            let missing = if seq - 1 == last + 1 {
                format!("seq {} is missing", last + 1)
            } else {
                format!("seq {}..{} are missing", last + 1, seq - 1)
            };
            self.problem(seq, format!("{missing} before it"));
        }
        true
    }

    /// Counts a line too long to be a frame (over `limit` bytes), which was not read.
    pub fn oversized(&mut self, limit: usize) {
        self.line += 1;
        self.verdict.problems.push(Problem {
            line: self.line,
            seq: None,
            what: format!("longer than {limit} bytes: not a sigcast frame"),
        });
    }

    fn problem(&mut self, seq: u64, what: String) {
        self.verdict.problems.push(Problem {
            line: self.line,
            seq: Some(seq),
            what,
        });
    }

    pub fn finish(self) -> Verdict {
        self.verdict
    }
}

/// The `seq` of a line that is a journaled signal: a JSON object with a `seq`, not a test.
fn journaled_seq(text: &str) -> Option<u64> {
    if !text.starts_with('{') {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    if v.get("is_test").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    v.get("seq")?.as_u64()
}

/// Problems printed at most; the rest are counted.
const SHOWN: usize = 100;

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = match (self.first_seq, self.last_seq) {
            (Some(a), Some(b)) => format!(", seq {a}..{b}"),
            _ => String::new(),
        };
        let kids = match self.kids.len() {
            0 => "none".to_string(),
            _ => self.kids.iter().cloned().collect::<Vec<_>>().join(", "),
        };
        writeln!(
            f,
            "{} signals{span}: {} signatures good (keys: {kids}), {} other lines skipped",
            self.signals, self.verified, self.skipped
        )?;
        let start = if self.chain_start {
            "from the chain's first signal"
        } else {
            "from a signal whose predecessors are not in the file"
        };
        if self.verified == 0 {
            writeln!(f, "chain: not checked (no signature held)")?;
        } else if self.gaps.is_empty() {
            writeln!(f, "chain: unbroken {start}")?;
        } else {
            writeln!(
                f,
                "chain: checked between consecutive signals {start}; not checked across {} gaps in seq (a scoped client sees only its signals)",
                self.gaps.len()
            )?;
        }
        for p in self.problems.iter().take(SHOWN) {
            let seq = p.seq.map(|s| format!("seq {s}: ")).unwrap_or_default();
            writeln!(f, "FAILED line {}: {seq}{}", p.line, p.what)?;
        }
        if self.problems.len() > SHOWN {
            writeln!(f, "FAILED: {} more problems", self.problems.len() - SHOWN)?;
        }
        Ok(())
    }
}
