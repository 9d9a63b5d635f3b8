//! What clients observe during a run: per-delivery latencies and each broadcast's completion.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Latency samples are kept exactly (µs as `u32`), in shards so clients rarely contend.
const SHARDS: usize = 16;

/// Shared by every client of a run.
pub struct Recorder {
    /// Latencies (µs), by client shard.
    shards: Vec<Mutex<Vec<u32>>>,
    /// Per broadcast: when the publisher sent it, ns since the epoch.
    emitted: Vec<AtomicU64>,
    /// Per broadcast: the latest arrival at any client, ns since the epoch.
    last_arrival: Vec<AtomicU64>,
    /// Per broadcast: clients that received it.
    arrivals: Vec<AtomicU32>,
    /// Per broadcast: when the publisher had its ack, ns since the epoch.
    acked: Vec<AtomicU64>,
    /// Acks so far: the server answers publishes in order, so the n-th ack is the n-th
    /// broadcast's.
    acks: AtomicUsize,
    /// Publishes answered with an error: the acks after one no longer line up.
    refused: AtomicU64,
    /// Messages received that were not the benchmark's signals (acks, pings aside).
    pub other: AtomicU64,
}

impl Recorder {
    pub fn new(broadcasts: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            emitted: (0..broadcasts).map(|_| AtomicU64::new(0)).collect(),
            last_arrival: (0..broadcasts).map(|_| AtomicU64::new(0)).collect(),
            arrivals: (0..broadcasts).map(|_| AtomicU32::new(0)).collect(),
            acked: (0..broadcasts).map(|_| AtomicU64::new(0)).collect(),
            acks: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            other: AtomicU64::new(0),
        }
    }

    /// Notes when broadcast `index` was sent.
    pub fn emitted(&self, index: usize, at_ns: u64) {
        if let Some(e) = self.emitted.get(index) {
            e.store(at_ns, Ordering::Relaxed);
        }
    }

    /// When broadcast `index` was sent (ns), if it was.
    pub fn emitted_at(&self, index: usize) -> Option<u64> {
        let at = self.emitted.get(index)?.load(Ordering::Relaxed);
        (at > 0).then_some(at)
    }

    /// Notes that broadcast `index`, emitted at `emit_ns`, reached a client at `now_ns`.
    /// `local` is the client's own buffer of latencies, flushed into a shard when full.
    pub fn arrived(
        &self,
        client: usize,
        index: usize,
        emit_ns: u64,
        now_ns: u64,
        local: &mut Vec<u32>,
    ) {
        let latency_us = (now_ns.saturating_sub(emit_ns) / 1000).min(u32::MAX as u64) as u32;
        local.push(latency_us);
        if local.len() >= 256 {
            self.flush(client, local);
        }
        if let (Some(last), Some(count)) = (self.last_arrival.get(index), self.arrivals.get(index))
        {
            last.fetch_max(now_ns, Ordering::Relaxed);
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Notes a reply to a publish that reached the publisher at `now_ns`: an ack (the next
    /// broadcast's) or a refusal.
    pub fn answered(&self, ack: bool, now_ns: u64) {
        if !ack {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let index = self.acks.fetch_add(1, Ordering::Relaxed);
        if let Some(a) = self.acked.get(index) {
            a.store(now_ns, Ordering::Relaxed);
        }
    }

    /// Each acked broadcast's time from its emit to its ack (µs), sorted; `None` when a
    /// publish was refused, since the acks then no longer line up with the broadcasts.
    pub fn ack_latencies(&self) -> Option<Vec<u32>> {
        if self.refused.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let mut all: Vec<u32> = self
            .acked
            .iter()
            .enumerate()
            .filter_map(|(i, acked)| {
                let acked = acked.load(Ordering::Relaxed);
                let emit = self.emitted_at(i).filter(|_| acked > 0)?;
                Some((acked.saturating_sub(emit) / 1000).min(u32::MAX as u64) as u32)
            })
            .collect();
        all.sort_unstable();
        Some(all)
    }

    /// Moves a client's buffered latencies into its shard.
    pub fn flush(&self, client: usize, local: &mut Vec<u32>) {
        if local.is_empty() {
            return;
        }
        let mut shard = self.shards[client % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        shard.append(local);
    }

    /// Every latency recorded, sorted (µs).
    pub fn latencies(&self) -> Vec<u32> {
        let mut all: Vec<u32> = Vec::new();
        for shard in &self.shards {
            all.extend(shard.lock().unwrap_or_else(|p| p.into_inner()).iter());
        }
        all.sort_unstable();
        all
    }

    /// Deliveries so far.
    pub fn delivered(&self) -> u64 {
        self.arrivals
            .iter()
            .map(|c| c.load(Ordering::Relaxed) as u64)
            .sum()
    }

    /// The latest arrival of broadcast `index` at any client (ns), if any.
    pub fn completed_at(&self, index: usize) -> Option<u64> {
        let at = self.last_arrival.get(index)?.load(Ordering::Relaxed);
        (at > 0).then_some(at)
    }

    /// The latest arrival of anything (ns).
    pub fn last_arrival(&self) -> u64 {
        self.last_arrival
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

/// The `q` quantile (0..=1) of sorted values.
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Finds `bench:<index>:<emit_ns>` in a message without parsing the JSON around it.
pub fn stamp(text: &str) -> Option<(usize, u64)> {
    let at = text.find("bench:")? + 6;
    let rest = &text[at..];
    let (index, rest) = rest.split_once(':')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    Some((index.parse().ok()?, rest[..digits].parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_found_in_any_shape() {
        let frame = r#"{"type":"buy","content":{"symbol":"BTCUSDT","price":1.0,"timestamp":1,"strategy":"external","interval":"","reason":"bench:42:1720000000123456789"},"is_test":false,"seq":9}"#;
        assert_eq!(stamp(frame), Some((42, 1_720_000_000_123_456_789)));
        assert_eq!(stamp(r#"{"type":"pong"}"#), None);
        assert_eq!(stamp("bench:x:1"), None);
    }

    #[test]
    fn quantiles_and_completion() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&values, 0.5), 50);
        assert_eq!(quantile(&values, 0.99), 99);
        assert_eq!(quantile(&values, 1.0), 100);
        let r = Recorder::new(2);
        let mut local = Vec::new();
        r.arrived(0, 1, 1_000, 5_000, &mut local);
        r.arrived(1, 1, 1_000, 9_000, &mut local);
        r.flush(0, &mut local);
        assert_eq!(r.latencies(), vec![4, 8]);
        assert_eq!((r.completed_at(1), r.completed_at(0)), (Some(9_000), None));
        assert_eq!(r.delivered(), 2);
    }

    #[test]
    fn acks_line_up_with_broadcasts_in_order_until_one_is_refused() {
        let r = Recorder::new(3);
        r.emitted(0, 1_000_000);
        r.emitted(1, 2_000_000);
        r.emitted(2, 3_000_000);
        r.answered(true, 1_500_000);
        r.answered(true, 4_000_000);
        assert_eq!(
            r.ack_latencies(),
            Some(vec![500, 2_000]),
            "the third is not acked yet"
        );
        r.answered(false, 5_000_000);
        assert_eq!(r.ack_latencies(), None);
    }
}
