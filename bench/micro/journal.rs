//! Journal benchmark: append throughput (signals per second through the hub, numbered,
//! serialized and committed in batches by the journal's writer) and resume throughput
//! (signals per second read back in pages, as a resuming client is served). Also shows the
//! broadcast path does not wait on the disk: the hub's publish time per signal, and the time
//! from publish to a session's ring through the write-ahead journal under light load.
//!
//! The journal signs what it commits (docs/verify.md): the append is measured unsigned and
//! signed, and the cost of sealing and of checking one signal on its own.
//!
//! Then resume end to end: a real TLS server on loopback and `sigcast::client` asking for the
//! whole history at once, in signals per second delivered to that one client.
//!
//! Run: `cargo bench --bench journal`.

use std::time::{Duration, Instant};

use sigcast::hub::Hub;
use sigcast::hub::journal::{Journal, Retention};
use sigcast::hub::proof::{self, Chain, KeyDir, KeySet, Signer, verify::Verifier};
use sigcast::strategy::{Side, Signal};

const N: u64 = 200_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let signal = Signal {
        side: Side::Buy,
        symbol: "BTCUSDT".into(),
        price: 75_000.0,
        timestamp: 1_720_000_000,
        strategy: "bench".into(),
        interval: "1m".into(),
        reason: "journal benchmark".into(),
    };
    seal_cost(&signal);
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("unsigned"), None, &signal, &runtime);
    let keys = KeyDir::of(dir.path());
    let signer = keys.load_or_create().unwrap();
    let hub = append(
        &dir.path().join("signed"),
        Some((signer, keys.public_keys().unwrap())),
        &signal,
        &runtime,
    );

    let journal = hub.journal().unwrap();
    let started = Instant::now();
    let mut after = 0;
    let mut read = 0u64;
    runtime.block_on(async {
        loop {
            let (page, _) = journal.read(after, N).await.unwrap();
            let Some(last) = page.last().map(|p| p.seq) else {
                break;
            };
            read += page.len() as u64;
            after = last;
        }
    });
    assert_eq!(read, N);
    println!(
        "journal resume read (pages of {}): {:.0} signals/s",
        sigcast::hub::journal::PAGE,
        N as f64 / started.elapsed().as_secs_f64()
    );

    write_ahead_latency(&hub, &signal, &runtime);
    resume_to_one_client(&runtime);
}

/// `N` signals through a hub whose journal signs with `signer` (or does not); returns the
/// hub.
fn append(
    dir: &std::path::Path,
    signer: Option<(Signer, KeySet)>,
    signal: &Signal,
    runtime: &tokio::runtime::Runtime,
) -> Hub {
    let retention = Retention {
        max_age: Duration::from_secs(86400),
        max_count: 10_000_000,
    };
    let (journal, last) = Journal::open(&dir.join("sigcast.db"), retention).unwrap();
    let signed = signer.is_some();
    if let Some((signer, keys)) = signer {
        journal.sign_with(signer, keys);
    }
    let hub = Hub::with_journal(vec![], 1024, journal, last);
    let _listener = hub.subscribe(); // a session's view, so frames are really broadcast
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for _ in 0..N {
        let t = Instant::now();
        hub.publish(signal);
        slowest = slowest.max(t.elapsed());
    }
    let published = started.elapsed();
    runtime.block_on(async {
        hub.journal().unwrap().wait_flushed(N).await.unwrap();
    });
    let committed = started.elapsed();
    // The checkpoint thread measures the footprint every second.
    std::thread::sleep(Duration::from_millis(2_500));
    let bytes = hub
        .journal()
        .unwrap()
        .footprint()
        .bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "journal append, {N} signals, {}:",
        if signed { "signed" } else { "unsigned" }
    );
    println!(
        "  publish (number + serialize + queue for the writer): {:.0} ns/signal avg, slowest {:?}",
        published.as_nanos() as f64 / N as f64,
        slowest
    );
    println!(
        "  committed to SQLite (WAL, batched{}): {:.0} signals/s; on disk {:.0} bytes/signal",
        if signed { ", sealed by the writer" } else { "" },
        N as f64 / committed.as_secs_f64(),
        bytes as f64 / N as f64
    );
    hub
}

/// Sealing one signal (SHA-256 chain + Ed25519 signature) and checking it, on one core.
fn seal_cost(signal: &Signal) {
    const M: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyDir::of(dir.path());
    let mut chain = Chain {
        prev: proof::GENESIS,
        signer: keys.load_or_create().unwrap().into(),
    };
    let frames: Vec<String> = (1..=M)
        .map(|seq| sigcast::hub::encode_seq(signal, seq).to_string())
        .collect();
    let started = Instant::now();
    let sealed: Vec<String> = frames.iter().map(|f| chain.seal(f).unwrap()).collect();
    let seal = started.elapsed().as_nanos() as f64 / M as f64;
    let published = keys.public_keys().unwrap();
    let mut verifier = Verifier::new(&published, false);
    let started = Instant::now();
    for line in &sealed {
        verifier.line(line);
    }
    let check = started.elapsed().as_nanos() as f64 / M as f64;
    assert!(verifier.finish().passed());
    println!(
        "proof: {:.1} us to seal a signal (chain + sign), {:.1} us to check one (parse + chain + verify); frame {} -> {} bytes",
        seal / 1e3,
        check / 1e3,
        frames[0].len(),
        sealed[0].len()
    );
}

/// Write-ahead costs the broadcast path a hop through the writer thread and a commit: the
/// time from `publish` to a session's ring, at 1,000 signals/s.
fn write_ahead_latency(hub: &Hub, signal: &Signal, runtime: &tokio::runtime::Runtime) {
    const LIGHT: usize = 3_000;
    let mut ring = hub.subscribe();
    let mut sent = Vec::with_capacity(LIGHT);
    let receiver = runtime.spawn(async move {
        let mut at = Vec::with_capacity(LIGHT);
        while at.len() < LIGHT {
            ring.recv().await.unwrap();
            at.push(Instant::now());
        }
        at
    });
    for _ in 0..LIGHT {
        sent.push(Instant::now());
        hub.publish(signal);
        std::thread::sleep(Duration::from_millis(1));
    }
    let received = runtime.block_on(receiver).unwrap();
    let mut lat: Vec<Duration> = sent.iter().zip(&received).map(|(s, r)| *r - *s).collect();
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "  publish -> session ring through the journal (committed first), 1,000/s: p50 {:?}, p99 {:?}, max {:?}",
        q(0.5),
        q(0.99),
        lat[lat.len() - 1]
    );
}

/// A server with `N` journaled signals; one client resumes from 0 and counts them in.
fn resume_to_one_client(runtime: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let cert = sigcast::devcert::generate().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &cert.key_pem).unwrap();
    std::fs::write(
        dir.path().join("jwt.secret"),
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let mut o = sigcast::config::Overrides::default();
    for (k, v) in [
        ("tls.cert", "cert.pem"),
        ("tls.key", "key.pem"),
        ("auth.jwt_secret_file", "jwt.secret"),
        ("data.dir", "data"),
    ] {
        o.set(k, dir.path().join(v).to_string_lossy());
    }
    let config = sigcast::config::Config::load(None, &Default::default(), &o).unwrap();
    runtime.block_on(async {
        let shared = sigcast::node::build(&config).unwrap();
        let signal = Signal {
            side: Side::Sell,
            symbol: "ETHUSDT".into(),
            price: 3_500.0,
            timestamp: 1_720_000_000,
            strategy: "bench".into(),
            interval: "1m".into(),
            reason: "resume benchmark".into(),
        };
        for _ in 0..N {
            shared.hub.publish(&signal);
        }
        shared.hub.journal().unwrap().wait_flushed(N).await.unwrap();
        let token = shared
            .keys
            .current()
            .issue("bench", Duration::from_secs(600), None)
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(sigcast::server::run(listener, shared, stop.clone()));
        let mut options =
            sigcast::client::ClientOptions::new(&format!("wss://127.0.0.1:{port}"), &token);
        options.ca = Some(dir.path().join("cert.pem"));
        options.since = Some(0);
        let started = Instant::now();
        let mut signals = sigcast::client::Client::new(options).listen();
        let mut got = 0u64;
        while got < N {
            match signals.recv().await {
                Some(Ok(_)) => got += 1,
                other => panic!("resume stopped: {other:?}"),
            }
        }
        println!(
            "resume to one client over TLS (history of {N}, client parses each): {:.0} signals/s",
            N as f64 / started.elapsed().as_secs_f64()
        );
        stop.cancel();
    });
}
