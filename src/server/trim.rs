//! Hands memory freed by a burst of connections back to the OS.
//!
//! A TLS + JWT handshake allocates about 10 KiB for a moment, between the long-lived
//! allocations of the sessions admitted around it. glibc's allocator keeps those freed pages
//! in its heaps (it trims only the top), so after 10,000 handshakes the server held about
//! 1 KiB per client of free memory as RSS. After connections come or go in numbers,
//! `malloc_trim` returns the free pages, on a blocking thread so no session waits for it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;

/// How often the churn is looked at.
const CHECK: Duration = Duration::from_secs(1);
/// Handshakes plus sessions ended since the last trim that make the next one worth it.
const CHURN: u64 = 256;

/// Trims after churn until `shutdown`; a no-op where the allocator is not glibc's.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let mut tick = tokio::time::interval(CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = churn(&shared);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = churn(&shared);
        if now.abs_diff(last) < CHURN {
            continue;
        }
        last = now;
        let started = std::time::Instant::now();
        let _ = tokio::task::spawn_blocking(release).await;
        tracing::debug!(took = ?started.elapsed(), "freed memory returned to the OS");
    }
}

/// Handshakes so far plus sessions ended so far (handshakes minus live sessions).
fn churn(shared: &Shared) -> u64 {
    let handshakes: u64 = shared.stats.handshakes().map(|(_, n)| n).sum();
    let live = shared
        .stats
        .sessions
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(0) as u64;
    handshakes + handshakes.saturating_sub(live)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() {
    // SAFETY: malloc_trim only walks and releases the allocator's own free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}
