//! Cluster mode against a real `nats-server` with JetStream (Debian's, which scripts/test
//! installs; SIGCAST_E2E_NATS names it), on a loopback port with a store in a temporary
//! directory. Nodes are `sigcast serve` processes; clients and publishers are real TLS
//! WebSocket sessions.
//!
//! One producer and three edges give every client the same `seq` sequence; an edge killed
//! loses its clients nothing (they resume on another edge); the leader producer killed, the
//! standby takes over within the lease bound with no gap and no duplicate; NATS restarted,
//! every node catches up; a token revoked through the cluster closes its session on another
//! node within 2 s; and start errors (NATS unreachable, JetStream off, a conflicting stream)
//! are one clear line.
//!
//! About 1,300 lines: each scenario needs its nats-server, nodes and clients started and
//! watched, and they share those helpers; split by scenario when one more is added.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Material;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sigcast::auth::{KeyRing, Scope};
use sigcast::hub::proof::KeySet;
use sigcast::hub::proof::verify::{Verdict, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

/// A nats-server with JetStream, restartable on the same port and store.
struct Nats {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    jetstream: bool,
    /// In a NATS cluster: this server's name, its route port and every route.
    cluster: Option<(String, u16, Vec<u16>)>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nats {
    fn start(bin: &Path, dir: &Path, jetstream: bool) -> Nats {
        let mut nats = Nats {
            bin: bin.to_path_buf(),
            port: free_port(),
            dir: dir.to_path_buf(),
            jetstream,
            cluster: None,
            child: None,
        };
        nats.run();
        nats
    }

    /// Three servers routed into one NATS cluster with JetStream, each with its own store.
    fn start_cluster(bin: &Path, dir: &Path) -> Vec<Nats> {
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut servers: Vec<Nats> = (0..3)
            .map(|i| {
                let dir = dir.join(format!("n{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                Nats {
                    bin: bin.to_path_buf(),
                    port: free_port(),
                    dir,
                    jetstream: true,
                    cluster: Some((format!("n{i}"), routes[i], routes.clone())),
                    child: None,
                }
            })
            .collect();
        for s in &mut servers {
            s.run();
        }
        servers
    }

    fn run(&mut self) {
        let mut command = Command::new(&self.bin);
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.jetstream {
            command.arg("-js").arg("-sd").arg(self.dir.join("js"));
        }
        if let Some((name, route, routes)) = &self.cluster {
            let routes: Vec<String> = routes
                .iter()
                .filter(|r| *r != route)
                .map(|r| format!("nats://127.0.0.1:{r}"))
                .collect();
            command
                .args(["-n", name, "--cluster_name", "sigcast"])
                .arg("--cluster")
                .arg(format!("nats://127.0.0.1:{route}"))
                .arg("--routes")
                .arg(routes.join(","));
        }
        let log = std::fs::File::create(self.dir.join(format!("nats-{}.log", self.port))).unwrap();
        self.child = Some(
            command
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("nats-server starts"),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `sigcast serve` process.
struct Node {
    name: String,
    child: Child,
    log: PathBuf,
    listen: SocketAddr,
    admin: SocketAddr,
}

/// Settings every node of a test shares: its material, the strategies, JSON logs.
fn node_settings(material: &Material, name: &str) -> Vec<(String, String)> {
    let signals = material.path("signals");
    std::fs::create_dir_all(&signals).unwrap();
    std::fs::write(signals.join("quick.toml"), common::QUICK).unwrap();
    [
        ("server.listen", "127.0.0.1:0".to_string()),
        ("admin.listen", "127.0.0.1:0".into()),
        ("tls.cert", material.path("cert.pem").display().to_string()),
        ("tls.key", material.path("key.pem").display().to_string()),
        (
            "auth.jwt_secret_file",
            material.path("jwt.secret").display().to_string(),
        ),
        (
            "data.dir",
            material.path(&format!("data-{name}")).display().to_string(),
        ),
        ("signals.dir", signals.display().to_string()),
        ("source.kind", "synthetic".into()),
        ("source.tick", "20ms".into()),
        ("log.format", "json".into()),
        ("log.level", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl Node {
    async fn start(material: &Material, name: &str, role: &str, nats: &str) -> Node {
        Self::start_with(material, name, role, nats, &[]).await
    }

    async fn start_with(
        material: &Material,
        name: &str,
        role: &str,
        nats: &str,
        extra: &[(&str, &str)],
    ) -> Node {
        let (child, log) = spawn_node(material, name, role, nats, extra);
        let mut node = Node {
            name: name.into(),
            child,
            log,
            listen: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            for line in text.lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if let Some(a) = v["fields"]["admin"].as_str() {
                    node.admin = a.parse().unwrap();
                }
                if v["fields"]["message"] == "sigcast listening" {
                    node.listen = v["fields"]["listen"].as_str().unwrap().parse().unwrap();
                }
            }
            if node.listen.port() != 0 && node.admin.port() != 0 {
                return node;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("{name} exited with {status}:\n{text}");
            }
            assert!(Instant::now() < deadline, "{name} did not start:\n{text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `/readyz`: the status code and the text.
    async fn readyz(&self) -> (u16, String) {
        self.admin_get("/readyz").await
    }

    /// One value of `/metrics`.
    async fn metric(&self, name: &str) -> Option<u64> {
        let text = self.admin_get("/metrics").await.1;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    async fn admin_get(&self, path: &str) -> (u16, String) {
        let Ok(mut tcp) = tokio::net::TcpStream::connect(self.admin).await else {
            return (0, String::new());
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let _ = tcp.write_all(request.as_bytes()).await;
        let mut text = String::new();
        let _ = tcp.read_to_string(&mut text).await;
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, text)
    }

    async fn wait_ready(&self, what: &str, want: impl Fn(u16, &str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, text) = self.readyz().await;
            if want(code, &text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {what}: last /readyz {code}:\n{text}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn leading(&self) -> bool {
        self.readyz().await.1.contains("leading the producers")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    /// Stops the node; when a test failed, its log's last lines tell what it was doing.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "--- node {} (last lines of its log)\n{}",
                self.name,
                tail.join("\n")
            );
        }
    }
}

fn spawn_node(
    material: &Material,
    name: &str,
    role: &str,
    nats: &str,
    extra: &[(&str, &str)],
) -> (Child, PathBuf) {
    let log = material.path(&format!("{name}.log"));
    let mut command = common::sigcast_command();
    command
        .arg("serve")
        .args(["--role", role, "--nats", nats])
        .env_remove("SIGCAST_CONFIG")
        .current_dir(material.dir.path());
    for (k, v) in node_settings(material, name) {
        command.arg("--set").arg(format!("{k}={v}"));
    }
    for (k, v) in extra {
        command.arg("--set").arg(format!("{k}={v}"));
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

/// What one client received: each signal's `seq` and its frame, in order.
#[derive(Default)]
struct Received {
    frames: Vec<(u64, String)>,
    /// Connections it made (1 + reconnects).
    connects: u32,
    /// Close codes it saw.
    closes: Vec<u16>,
}

impl Received {
    /// The last `seq` received, 0 before any.
    fn last(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.0)
    }
}

/// A client reading signals from the first of `nodes` that takes it, resuming on the next
/// with `X-Sigcast-Last-Seq` whenever its connection ends, until `stop`.
fn reader(
    nodes: Vec<SocketAddr>,
    ca: PathBuf,
    token: String,
    since: Option<u64>,
    stop: CancellationToken,
) -> (Arc<Mutex<Received>>, tokio::task::JoinHandle<()>) {
    let received: Arc<Mutex<Received>> = Arc::default();
    let out = received.clone();
    let task = tokio::spawn(async move {
        let mut at = 0;
        let mut last = since;
        while !stop.is_cancelled() {
            let addr = nodes[at % nodes.len()];
            let Some(mut ws) = connect(addr, &ca, &token, last).await else {
                at += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            out.lock().unwrap().connects += 1;
            loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => return,
                    m = ws.next() => m,
                };
                match message {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap();
                        if let Some(seq) = v["seq"].as_u64() {
                            last = Some(seq);
                            out.lock()
                                .unwrap()
                                .frames
                                .push((seq, t.as_str().to_string()));
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map_or(1005, |f| u16::from(f.code));
                        out.lock().unwrap().closes.push(code);
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
            at += 1;
        }
    });
    (received, task)
}

async fn connect(
    addr: SocketAddr,
    ca: &Path,
    token: &str,
    last: Option<u64>,
) -> Option<common::Client> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let tls = common::try_tls_over(tcp, ca, None).await.ok()?;
    let mut request = format!("wss://localhost:{}/", addr.port())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    if let Some(seq) = last {
        request
            .headers_mut()
            .insert("x-sigcast-last-seq", HeaderValue::from(seq));
    }
    tokio_tungstenite::client_async(request, tls)
        .await
        .ok()
        .map(|(ws, _)| ws)
}

/// Publishes `n` signals through `node`'s publish API, one at a time; returns the seqs the
/// cluster confirmed. A publish answered as pending (no leader or no stream for a while, as
/// in a NATS failover) is sent again under its id, as the protocol asks.
async fn publish(node: SocketAddr, ca: &Path, token: &str, from: usize, n: usize) -> Vec<u64> {
    let mut ws = connect(node, ca, token, None)
        .await
        .expect("publisher connects");
    let mut seqs = Vec::new();
    for i in from..from + n {
        let mut signal = json!({"type": "publish", "signal": {"type": "buy", "content": {
            "symbol": "PUBUSDT", "price": 100.0 + i as f64, "timestamp": sigcast::clock::unix_now() as usize + i,
            "strategy": "pub", "reason": format!("p{i}")}}});
        ws.send(Message::text(signal.to_string())).await.unwrap();
        let mut tries = 1;
        loop {
            let m = common::within(Duration::from_secs(15), ws.next()).await;
            let Some(Ok(Message::Text(t))) = m else {
                panic!("publisher lost its connection: {m:?}");
            };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            match v["type"].as_str() {
                Some("publish_ack") => {
                    seqs.push(v["seq"].as_u64().unwrap());
                    break;
                }
                Some("publish_pending") if tries < 3 => {
                    tries += 1;
                    signal["id"] = v["id"].clone();
                    ws.send(Message::text(signal.to_string())).await.unwrap();
                }
                Some("error" | "publish_pending") => panic!("publish not stored: {t}"),
                _ => {}
            }
        }
    }
    seqs
}

fn tokens(material: &Material) -> (String, String) {
    let ring = KeyRing::from_settings(&material.config(&[]).auth).unwrap();
    let day = Duration::from_secs(86_400);
    let reader = ring.issue("reader", day, None).unwrap();
    let publisher = ring
        .issue_scoped(
            "publisher",
            day,
            None,
            &Scope {
                publisher: true,
                ..Scope::default()
            },
        )
        .unwrap();
    (reader, publisher)
}

/// Every client's seqs are consecutive (no gap, no repeat), and where two clients hold the
/// same seq they hold the same bytes.
fn assert_same_sequence(clients: &[Arc<Mutex<Received>>]) -> BTreeMap<u64, String> {
    let mut all: BTreeMap<u64, String> = BTreeMap::new();
    for (i, c) in clients.iter().enumerate() {
        let c = c.lock().unwrap();
        let seqs: Vec<u64> = c.frames.iter().map(|(s, _)| *s).collect();
        for pair in seqs.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "client {i}: gap or repeat in {seqs:?}"
            );
        }
        for (seq, frame) in &c.frames {
            let held = all.entry(*seq).or_insert_with(|| frame.clone());
            assert_eq!(held, frame, "client {i}: seq {seq} differs between nodes");
        }
    }
    all
}

/// No two stored signals are the same signal (a takeover or a retry stored twice).
fn assert_no_duplicate_signal(frames: &BTreeMap<u64, String>) {
    let mut seen = HashSet::new();
    for (seq, frame) in frames {
        let mut v: Value = serde_json::from_str(frame).unwrap();
        v.as_object_mut().unwrap().remove("seq");
        v.as_object_mut().unwrap().remove("proof");
        assert!(
            seen.insert(v.to_string()),
            "seq {seq} repeats an earlier signal: {frame}"
        );
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A producer, leading, and an edge, following, on `nats`.
async fn producer_and_edge(
    material: &Material,
    nats: &str,
    extra: &[(&str, &str)],
) -> (Node, Node) {
    let producer = Node::start_with(material, "producer", "producer", nats, extra).await;
    let edge = Node::start_with(material, "edge", "edge", nats, extra).await;
    producer
        .wait_ready("leading", |c, t| c == 200 && t.contains("leading"))
        .await;
    edge.wait_ready("following", |c, _| c == 200).await;
    (producer, edge)
}

/// A client reading from `node` alone, from now on.
fn read_on(
    node: &Node,
    material: &Material,
    token: &str,
    stop: &CancellationToken,
) -> Arc<Mutex<Received>> {
    let ca = material.path("cert.pem");
    reader(vec![node.listen], ca, token.to_string(), None, stop.clone()).0
}

fn nats_bin() -> Option<PathBuf> {
    common::e2e_tool("SIGCAST_E2E_NATS")
}

/// One producer, three edges, clients on every node: all receive the identical `seq`
/// sequence (the producer's strategies and a publisher on an edge both feed it), and a client
/// resuming from 0 on an edge gets the whole history out of the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_producer_three_edges_every_client_the_same_sequence() {
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let nats = Nats::start(&bin, material.dir.path(), true);
    let producer = Node::start(&material, "producer", "producer", &nats.url()).await;
    let mut edges = Vec::new();
    for i in 0..3 {
        edges.push(Node::start(&material, &format!("edge{i}"), "edge", &nats.url()).await);
    }
    producer
        .wait_ready("leading", |code, text| {
            code == 200 && text.contains("leading")
        })
        .await;
    for e in &edges {
        e.wait_ready("following", |code, _| code == 200).await;
    }
    let (token, publisher) = tokens(&material);
    let ca = material.path("cert.pem");
    let stop = CancellationToken::new();
    let mut clients = Vec::new();
    for node in std::iter::once(&producer).chain(&edges) {
        for _ in 0..2 {
            clients.push(reader(
                vec![node.listen],
                ca.clone(),
                token.clone(),
                None,
                stop.clone(),
            ));
        }
    }
    wait_for("every client connected", Duration::from_secs(10), || {
        clients.iter().all(|(r, _)| r.lock().unwrap().connects == 1)
    })
    .await;
    let acked = publish(edges[1].listen, &ca, &publisher, 0, 20).await;
    let last = *acked.last().unwrap();
    wait_for(
        "every client has the published signals",
        Duration::from_secs(20),
        || {
            clients
                .iter()
                .all(|(r, _)| r.lock().unwrap().last() >= last)
        },
    )
    .await;
    wait_for(
        "a signal of the producer's strategies",
        Duration::from_secs(20),
        || {
            clients[0]
                .0
                .lock()
                .unwrap()
                .frames
                .iter()
                .any(|(_, f)| f.contains("\"strategy\":\"quick\""))
        },
    )
    .await;
    // An edge follows no market: the leader's prices mark its track record, which trades
    // the stream's signals as the leader's does.
    let trades = |report: &Value| -> Vec<(u64, String)> {
        let quick = report["strategies"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["strategy"] == "quick"));
        quick
            .and_then(|q| q["trades"].as_array())
            .map(|t| {
                t.iter()
                    .map(|t| {
                        (
                            t["entry_seq"].as_u64().unwrap(),
                            t["entry_price"].to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let performance = |node: SocketAddr| {
        let (ca, token) = (ca.clone(), token.clone());
        async move {
            let (status, _, body) =
                common::https_get(node, &ca, "/v1/performance", Some(&token)).await;
            assert_eq!(status, 200, "{body}");
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let on_edge = loop {
        let report = performance(edges[1].listen).await;
        if !trades(&report).is_empty() {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "no tracked trade on the edge: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let on_producer = trades(&performance(producer.listen).await);
    for trade in trades(&on_edge) {
        assert!(
            on_producer.contains(&trade),
            "edge trade {trade:?} not the leader's: {on_producer:?}"
        );
    }
    // An edge started now rebuilds the record from the stream: the leader's first trades too,
    // and the leader's equity samples, from the checkpoints the leader keeps in the cluster.
    let late = Node::start(&material, "late", "edge", &nats.url()).await;
    late.wait_ready("following", |code, _| code == 200).await;
    let late_report = performance(late.listen).await;
    let rebuilt = trades(&late_report);
    assert_eq!(rebuilt.first(), on_producer.first(), "{rebuilt:?}");
    let leader_report = performance(producer.listen).await;
    let now = trades(&leader_report);
    for trade in &rebuilt {
        assert!(now.contains(trade), "rebuilt {trade:?} not the leader's");
    }
    let samples = |report: &Value| -> Vec<Value> {
        let quick = report["strategies"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["strategy"] == "quick"));
        let mut equity = quick.unwrap()["equity"].as_array().unwrap().clone();
        equity.pop(); // the closing point, at each node's latest mark
        equity
    };
    let (late_samples, leader_samples) = (samples(&late_report), samples(&leader_report));
    assert_eq!(
        late_samples.first(),
        leader_samples.first(),
        "the rebuilt curve starts at the leader's first sample"
    );

    // A late client resuming from the start, on an edge that has never seen it.
    let (history, _) = reader(
        vec![edges[2].listen],
        ca.clone(),
        token.clone(),
        Some(0),
        stop.clone(),
    );
    let head = clients[0].0.lock().unwrap().frames.last().unwrap().0;
    wait_for("history from the stream", Duration::from_secs(20), || {
        history.lock().unwrap().last() >= head
    })
    .await;
    // What operators see: every node connected, the producer leading, the edge that took the
    // publishes counting them.
    assert_eq!(producer.metric("sigcast_cluster_leader").await, Some(1));
    assert_eq!(edges[0].metric("sigcast_cluster_leader").await, Some(0));
    assert_eq!(
        edges[1].metric("sigcast_cluster_published_total").await,
        Some(20)
    );
    for node in std::iter::once(&producer).chain(&edges) {
        assert_eq!(node.metric("sigcast_cluster_connected").await, Some(1));
        assert!(node.metric("sigcast_cluster_delivered_seq").await >= Some(last));
    }
    stop.cancel();
    let mut all: Vec<_> = clients.iter().map(|(r, _)| r.clone()).collect();
    all.push(history.clone());
    let frames = assert_same_sequence(&all);
    assert_eq!(
        history.lock().unwrap().frames.first().map(|f| f.0),
        Some(1),
        "resumed from the first"
    );
    assert!(
        frames
            .values()
            .any(|f| f.contains("\"strategy\":\"quick\"")),
        "the producer's strategies feed the stream"
    );
    for seq in &acked {
        assert!(
            frames[seq].contains("\"PUBUSDT\""),
            "seq {seq} is the published signal"
        );
    }
    assert_no_duplicate_signal(&frames);
    // The producer sealed every signal, the edges' forwarded publishes too, at the seq the
    // stream gave it; any edge serves the key, and the chain runs from the stream's first.
    let verdict = assert_verifies(&edges[0], &ca, &frames).await;
    assert!(verdict.chain_start, "{verdict}");
}

/// Every frame's proof checks against the keys `node` serves, and the chain runs unbroken
/// through them in `seq` order. The verdict, for what else a test asks of it.
async fn assert_verifies(node: &Node, ca: &Path, frames: &BTreeMap<u64, String>) -> Verdict {
    let (status, _, body) = common::https_get(node.listen, ca, "/v1/journal/key", None).await;
    assert_eq!(status, 200, "{body}");
    let keys: KeySet = serde_json::from_str(&body).unwrap();
    let verdict = verify(&keys, frames.values().map(String::as_str));
    assert!(verdict.passed(), "{verdict}");
    assert_eq!(verdict.verified, frames.len(), "{verdict}");
    verdict
}

/// `frames` through `sigcast verify`'s checks with `keys`, in the order given.
fn verify<'a>(keys: &KeySet, frames: impl IntoIterator<Item = &'a str>) -> Verdict {
    let mut verifier = Verifier::new(keys, false);
    for frame in frames {
        verifier.line(frame);
    }
    verifier.finish()
}

/// An edge killed: its clients resume on another edge with their last seq and lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_killed_its_clients_resume_on_another_and_lose_nothing() {
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let nats = Nats::start(&bin, material.dir.path(), true);
    let producer = Node::start(&material, "producer", "producer", &nats.url()).await;
    let mut doomed = Node::start(&material, "doomed", "edge", &nats.url()).await;
    let spare = Node::start(&material, "spare", "edge", &nats.url()).await;
    producer
        .wait_ready("leading", |c, t| c == 200 && t.contains("leading"))
        .await;
    let (token, publisher) = tokens(&material);
    let ca = material.path("cert.pem");
    let stop = CancellationToken::new();
    let moving: Vec<_> = (0..3)
        .map(|_| {
            reader(
                vec![doomed.listen, spare.listen],
                ca.clone(),
                token.clone(),
                None,
                stop.clone(),
            )
        })
        .collect();
    let (witness, _) = reader(
        vec![spare.listen],
        ca.clone(),
        token.clone(),
        None,
        stop.clone(),
    );
    wait_for("connected", Duration::from_secs(10), || {
        moving.iter().all(|(r, _)| r.lock().unwrap().connects == 1)
            && witness.lock().unwrap().connects == 1
    })
    .await;
    publish(producer.listen, &ca, &publisher, 0, 10).await;
    doomed.kill();
    // Signals keep coming while the clients move.
    let acked = publish(producer.listen, &ca, &publisher, 10, 10).await;
    let last = *acked.last().unwrap();
    wait_for(
        "the moved clients caught up",
        Duration::from_secs(20),
        || {
            // The witness too: the comparison below runs up to `last` on both sides.
            moving.iter().all(|(r, _)| r.lock().unwrap().last() >= last)
                && witness.lock().unwrap().last() >= last
        },
    )
    .await;
    stop.cancel();
    let mut all: Vec<_> = moving.iter().map(|(r, _)| r.clone()).collect();
    all.push(witness.clone());
    assert_same_sequence(&all);
    let w = witness.lock().unwrap();
    let first = w.frames.first().unwrap().0;
    for (r, _) in &moving {
        let r = r.lock().unwrap();
        assert_eq!(r.connects, 2, "moved once, to the spare edge");
        // From where the witness started, the moved clients hold every seq it holds.
        let theirs: Vec<u64> = r
            .frames
            .iter()
            .map(|f| f.0)
            .filter(|s| *s >= first && *s <= last)
            .collect();
        let its: Vec<u64> = w
            .frames
            .iter()
            .map(|f| f.0)
            .filter(|s| *s <= last)
            .collect();
        assert_eq!(theirs, its);
    }
}

/// Two producers: the leader killed, the standby takes over within the lease bound
/// (cluster.lease 3 s, renewed every second: at most 4 s, well inside the default 5 s), and
/// the clients' sequence has no gap and no repeated signal across the takeover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_producer_takes_over_with_no_gap_and_no_duplicate() {
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let nats = Nats::start(&bin, material.dir.path(), true);
    let a = Node::start(&material, "a", "producer", &nats.url()).await;
    let b = Node::start(&material, "b", "producer", &nats.url()).await;
    let edge = Node::start(&material, "edge", "edge", &nats.url()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(a.leading().await || b.leading().await) {
        assert!(Instant::now() < deadline, "no producer leads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut leader, standby) = if a.leading().await { (a, b) } else { (b, a) };
    assert!(!standby.leading().await, "one leader at a time");
    standby
        .wait_ready("standing by, serving the stream", |c, _| c == 200)
        .await;
    let (token, _) = tokens(&material);
    let ca = material.path("cert.pem");
    let stop = CancellationToken::new();
    let (client, _) = reader(
        vec![edge.listen],
        ca.clone(),
        token.clone(),
        None,
        stop.clone(),
    );
    wait_for("signals from the leader", Duration::from_secs(20), || {
        client.lock().unwrap().frames.len() >= 5
    })
    .await;
    leader.kill();
    let killed = Instant::now();
    while !standby.leading().await {
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the standby never took over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = killed.elapsed();
    let before = client.lock().unwrap().frames.len();
    wait_for(
        "signals from the new leader",
        Duration::from_secs(30),
        || client.lock().unwrap().frames.len() >= before + 5,
    )
    .await;
    stop.cancel();
    let frames = assert_same_sequence(std::slice::from_ref(&client));
    assert_no_duplicate_signal(&frames);
    // Each producer signs with its own key; the chain runs on through the takeover.
    let verdict = assert_verifies(&edge, &ca, &frames).await;
    assert_eq!(verdict.kids.len(), 2, "both producers signed: {verdict}");
    assert!(took <= Duration::from_secs(5), "takeover took {took:?}");
    eprintln!("takeover in {took:?}");
    common::report(
        "cluster-takeover",
        &format!(
            "cluster: the standby producer led {took:.1?} after the leader was killed (cluster.lease 3 s)"
        ),
    );
}

/// nats-server restarted on its store: edges keep their clients and say not ready while it
/// is away, then every node catches up from its last seq; what a publisher sends during the
/// outage is stored once NATS is back and reaches everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_is_caught_up_by_every_node() {
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let mut nats = Nats::start(&bin, material.dir.path(), true);
    let (producer, edge) = producer_and_edge(&material, &nats.url(), &[]).await;
    let (token, publisher) = tokens(&material);
    let ca = material.path("cert.pem");
    let stop = CancellationToken::new();
    let on_edge = read_on(&edge, &material, &token, &stop);
    let on_producer = read_on(&producer, &material, &token, &stop);
    wait_for("signals", Duration::from_secs(20), || {
        on_edge.lock().unwrap().frames.len() >= 3
    })
    .await;

    nats.kill();
    edge.wait_ready("not ready without NATS", |c, t| {
        c == 503 && t.contains("disconnected")
    })
    .await;
    // A publish while NATS is away waits in the outbox (its ack comes once stored).
    let pending = {
        let (ca, publisher, at) = (ca.clone(), publisher.clone(), edge.listen);
        tokio::spawn(async move { publish(at, &ca, &publisher, 0, 1).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    nats.run();
    edge.wait_ready("ready again", |c, _| c == 200).await;
    producer.wait_ready("ready again", |c, _| c == 200).await;
    let acked = common::within(Duration::from_secs(20), pending)
        .await
        .unwrap();
    let after = publish(producer.listen, &ca, &publisher, 1, 5).await;
    let last = *after.last().unwrap();
    wait_for("caught up", Duration::from_secs(20), || {
        [&on_edge, &on_producer]
            .iter()
            .all(|r| r.lock().unwrap().last() >= last)
    })
    .await;
    stop.cancel();
    let frames = assert_same_sequence(&[on_edge.clone(), on_producer.clone()]);
    assert!(
        frames[&acked[0]].contains("PUBUSDT"),
        "the outage's publish was stored"
    );
    assert_eq!(
        on_edge.lock().unwrap().connects,
        1,
        "the edge kept its client through the outage"
    );
    assert_eq!(on_producer.lock().unwrap().connects, 1);
    assert_no_duplicate_signal(&frames);
}

/// One publish by WebSocket (`{"type":"publish","id":...}`); the reply's JSON.
async fn publish_once(ws: &mut common::Client, id: &str, price: f64) -> Value {
    let signal = json!({"type": "publish", "id": id, "signal": {"type": "buy", "content": {
        "symbol": "PUBUSDT", "price": price, "timestamp": sigcast::clock::unix_now(),
        "strategy": "pub", "reason": id}}});
    ws.send(Message::text(signal.to_string())).await.unwrap();
    loop {
        let m = common::within(Duration::from_secs(20), ws.next()).await;
        let Some(Ok(Message::Text(t))) = m else {
            panic!("publisher lost its connection: {m:?}");
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        if v["type"] != "buy" && v["type"] != "sell" && v["type"] != "pong" {
            return v;
        }
    }
}

/// `POST /v1/signals` with an `Idempotency-Key`; the status, the `Retry-After` header and the
/// JSON body. Fails the test if the server closes without an answer.
async fn http_publish(
    node: SocketAddr,
    ca: &Path,
    token: &str,
    key: &str,
    price: f64,
) -> (u16, Option<String>, Value) {
    let mut tls = common::tls_connect(node, ca).await;
    let body = json!({"type": "buy", "content": {"symbol": "PUBUSDT", "price": price,
        "timestamp": sigcast::clock::unix_now(), "strategy": "pub", "reason": key}})
    .to_string();
    let request = format!(
        "POST /v1/signals HTTP/1.1\r\nHost: sigcast\r\nAuthorization: Bearer {token}\r\nIdempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = common::within(Duration::from_secs(30), tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no answer to the HTTP publish: {text:?}"))
        .parse()
        .unwrap();
    let retry_after = text
        .lines()
        .find_map(|l| l.strip_prefix("Retry-After: "))
        .map(str::to_string);
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("null");
    (
        status,
        retry_after,
        serde_json::from_str(json).unwrap_or(Value::Null),
    )
}

/// A NATS outage longer than a publish's confirmation wait: WebSocket and HTTP publishes are
/// answered as pending (HTTP with 503 and Retry-After, before its connection's deadline),
/// never as failed; retried by their key, during the outage and after it, each is stored
/// exactly once and the retry learns the first one's seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_through_an_outage_are_pending_then_stored_once() {
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let mut nats = Nats::start(&bin, material.dir.path(), true);
    let extra = [("server.handshake_timeout", "3s")];
    let (producer, edge) = producer_and_edge(&material, &nats.url(), &extra).await;
    let (token, publisher) = tokens(&material);
    let ca = material.path("cert.pem");
    let stop = CancellationToken::new();
    let on_producer = read_on(&producer, &material, &token, &stop);
    let mut ws = connect(edge.listen, &ca, &publisher, None).await.unwrap();

    nats.kill();
    edge.wait_ready("not ready without NATS", |c, t| {
        c == 503 && t.contains("disconnected")
    })
    .await;
    let began = Instant::now();
    let pending = publish_once(&mut ws, "ws-1", 501.0).await;
    assert_eq!(pending["type"], "publish_pending", "{pending}");
    assert_eq!(pending["id"], "ws-1");
    assert!(
        began.elapsed() >= Duration::from_secs(9),
        "waited its confirmation time"
    );
    let (status, retry_after, body) =
        http_publish(edge.listen, &ca, &publisher, "http-1", 502.0).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (503, Some("publish_pending")),
        "{body}"
    );
    assert_eq!(body["id"], "http-1");
    assert!(retry_after.is_some(), "503 says when to retry");
    // Retried while NATS is still away: pending again, nothing stored twice later.
    let (status, _, body) = http_publish(edge.listen, &ca, &publisher, "http-1", 502.0).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (503, Some("publish_pending")),
        "{body}"
    );

    nats.run();
    edge.wait_ready("ready again", |c, _| c == 200).await;
    producer.wait_ready("ready again", |c, _| c == 200).await;
    let ws_ack = publish_once(&mut ws, "ws-1", 501.0).await;
    assert_eq!(ws_ack["type"], "publish_ack", "{ws_ack}");
    let (status, _, http_ack) = http_publish(edge.listen, &ca, &publisher, "http-1", 502.0).await;
    assert_eq!(
        (status, http_ack["type"].as_str()),
        (200, Some("publish_ack")),
        "{http_ack}"
    );
    let last = ws_ack["seq"]
        .as_u64()
        .unwrap()
        .max(http_ack["seq"].as_u64().unwrap());
    // A fresh publish after them all, so every earlier copy has surely been offered.
    let after = publish_once(&mut ws, "ws-2", 503.0).await;
    let after = after["seq"].as_u64().unwrap();
    assert!(after > last);
    wait_for("caught up", Duration::from_secs(20), || {
        on_producer.lock().unwrap().last() >= after
    })
    .await;
    stop.cancel();
    let frames = assert_same_sequence(std::slice::from_ref(&on_producer));
    for (key, seq) in [("ws-1", &ws_ack), ("http-1", &http_ack)] {
        let stored: Vec<&u64> = frames
            .iter()
            .filter(|(_, f)| f.contains(&format!("\"reason\":\"{key}\"")))
            .map(|(s, _)| s)
            .collect();
        assert_eq!(
            stored,
            vec![&seq["seq"].as_u64().unwrap()],
            "{key} stored exactly once"
        );
    }
}

/// A token revoked through the cluster (`sigcast token revoke` with cluster.nats) closes its
/// session on an edge within 2 s, and the edge refuses it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_closes_the_session_on_another_node_within_two_seconds() {
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let nats = Nats::start(&bin, material.dir.path(), true);
    let edge = Node::start(&material, "edge", "edge", &nats.url()).await;
    let other = Node::start(&material, "other", "edge", &nats.url()).await;
    let ca = material.path("cert.pem");
    let cli = |args: &[&str]| {
        let out = common::sigcast_command()
            .args(args)
            .args(["--set", &format!("cluster.nats={}", nats.url())])
            .args([
                "--set",
                &format!(
                    "auth.jwt_secret_file={}",
                    material.path("jwt.secret").display()
                ),
            ])
            .args([
                "--set",
                &format!("data.dir={}", material.path("cli-data").display()),
            ])
            .env_remove("SIGCAST_CONFIG")
            .current_dir(material.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sigcast {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let token = cli(&["token", "issue", "--sub", "mallory"])
        .trim()
        .to_string();
    let bystander = cli(&["token", "issue", "--sub", "alice"])
        .trim()
        .to_string();
    let listed = cli(&["token", "list"]);
    assert!(
        listed.contains("mallory") && listed.contains("alice"),
        "{listed}"
    );
    let mut ws = connect(edge.listen, &ca, &token, None)
        .await
        .expect("connects");
    let mut fine = connect(other.listen, &ca, &bystander, None)
        .await
        .expect("connects");
    let revoked_at = Instant::now();
    cli(&["token", "revoke", "--sub", "mallory"]);
    let (code, reason) = common::expect_close(&mut ws, Duration::from_secs(5)).await;
    let took = revoked_at.elapsed();
    assert_eq!(code, 1008, "{reason}");
    assert!(
        took <= Duration::from_secs(2),
        "closed {took:?} after the revocation"
    );
    assert!(
        connect(other.listen, &ca, &token, None).await.is_none(),
        "refused on every node"
    );
    common::send_text(&mut fine, r#"{"type":"ping"}"#).await;
    let mut pong = false;
    for _ in 0..5 {
        if common::next_text(&mut fine).await.contains("\"pong\"") {
            pong = true;
            break;
        }
    }
    assert!(pong, "others carry on");
    assert!(cli(&["token", "list"]).contains("revoked"));
}

/// The load generator over a cluster (what `bench/cluster` runs): clients spread over the
/// edges, the publisher on the producer, CPU added up over the nodes; everything delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_spreads_clients_over_the_edges() {
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let nats = Nats::start(&bin, material.dir.path(), true);
    let producer = Node::start(&material, "producer", "producer", &nats.url()).await;
    let edges = [
        Node::start(&material, "e0", "edge", &nats.url()).await,
        Node::start(&material, "e1", "edge", &nats.url()).await,
    ];
    for e in &edges {
        e.wait_ready("following", |c, _| c == 200).await;
    }
    let url = |n: &Node| format!("wss://localhost:{}", n.listen.port());
    let options = sigcast::loadgen::Options {
        url: edges.iter().map(url).collect::<Vec<_>>().join(","),
        publish_url: Some(url(&producer)),
        ca: Some(material.path("cert.pem")),
        clients: 30,
        concurrency: 8,
        rate: 20,
        duration: Duration::from_secs(1),
        server_pids: std::iter::once(&producer)
            .chain(&edges)
            .map(|n| n.child.id())
            .collect(),
        settle: Duration::from_millis(100),
    };
    let keys = KeyRing::from_settings(&material.config(&[]).auth).unwrap();
    let report = common::within(
        Duration::from_secs(60),
        sigcast::loadgen::run(&options, &keys),
    )
    .await
    .unwrap();
    assert_eq!((report.connected, report.expected), (30, 600));
    assert_eq!(report.delivered, 600, "{report:?}");
    assert!(report.server_cpu_us_per_delivery.is_some_and(|c| c > 0.0));
}

/// Two producers on the same market (the Binance mock, one aggTrade a second, prices going
/// up and down so a 2-over-3 MA cross signals every few candles): the leader is killed
/// mid-tape. The standby continues after the last trade the leader's strategies took (their
/// position in the cluster's bucket), fetching the trades in between, so the stream ends up
/// with exactly the signals one producer computes over the whole tape: none lost to the
/// takeover (candles that closed while no producer led included), none stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_loses_and_doubles_no_signal_of_the_market() {
    use common::binance_mock::{MockBinance, Settings, Tape};
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let nats = Nats::start(&bin, material.dir.path(), true);
    let pattern = [
        "10", "11", "12", "11", "10", "9", "8", "9", "10.5", "12.5", "9.5", "8.5",
    ];
    let prices: Vec<&str> = pattern.iter().cycle().take(160).copied().collect();
    let tape = Tape::per_second("TSTUSDT", &prices);
    // What one producer computes over the whole tape: the reference.
    let reference: Vec<String> = {
        let mut engine = sigcast::strategy::Engine::new(
            sigcast::strategy::definition::from_text(common::CROSS).unwrap(),
        );
        let mut out = Vec::new();
        for entry in &tape.entries {
            let (symbol, trade) = entry.agg.clone().unwrap();
            let event = sigcast::market::MarketEvent {
                market: sigcast::market::Market::Futures,
                symbol: symbol.into(),
                exchange_time_ms: trade.time_ms,
                received_at: std::time::SystemTime::now(),
                kind: sigcast::market::MarketEventKind::AggTrade(trade),
            };
            engine.on_event(&event, &mut out);
        }
        out.iter()
            .map(|s| format!("{} {} {:?}", s.side.as_str(), s.timestamp, s.price))
            .collect()
    };
    assert!(
        reference.len() >= 20,
        "the tape signals often: {}",
        reference.len()
    );
    let mock = MockBinance::start(tape, Settings::default()).await;
    let cross = material.path("cross");
    std::fs::create_dir_all(&cross).unwrap();
    std::fs::write(cross.join("cross.toml"), common::CROSS).unwrap();
    let settings = mock.sigcast_settings();
    let mut live: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    live.push(("signals.dir", cross.to_str().unwrap()));
    let a = Node::start_with(&material, "a", "producer", &nats.url(), &live).await;
    let b = Node::start_with(&material, "b", "producer", &nats.url(), &live).await;
    let edge = Node::start(&material, "edge", "edge", &nats.url()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(a.leading().await || b.leading().await) {
        assert!(Instant::now() < deadline, "no producer leads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut leader, standby) = if a.leading().await { (a, b) } else { (b, a) };
    // Ready needs warm strategies, which need the tape: wait for the upstream alone.
    leader
        .wait_ready("upstream up", |_, t| t.contains("upstream: ok"))
        .await;
    let (token, _) = tokens(&material);
    let stop = CancellationToken::new();
    let (client, _) = reader(
        vec![edge.listen],
        material.path("cert.pem"),
        token,
        None,
        stop.clone(),
    );
    wait_for("the client", Duration::from_secs(10), || {
        client.lock().unwrap().connects == 1
    })
    .await;
    mock.play(8);
    mock.wait_played(60).await;
    leader.kill();
    while !standby.leading().await {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let at_takeover = mock.played();
    let expected = reference.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.lock().unwrap().frames.len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything extra would come late: give it a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let frames = assert_same_sequence(std::slice::from_ref(&client));
    let got: Vec<String> = frames
        .values()
        .map(|f| {
            let v: Value = serde_json::from_str(f).unwrap();
            format!(
                "{} {} {}",
                v["type"].as_str().unwrap(),
                v["content"]["timestamp"],
                v["content"]["price"]
            )
        })
        .collect();
    assert!(
        at_takeover < 160,
        "the takeover happened mid-tape ({at_takeover} of 160 played)"
    );
    assert_eq!(
        got, reference,
        "the stream holds what one producer computes, once each"
    );
}

/// Waits until JetStream answers on `url` (a NATS cluster first elects its meta leader).
async fn wait_jetstream(url: &str) {
    let client = async_nats::connect(url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(reply) = client.request("$JS.API.INFO", "".into()).await {
            let v: Value = serde_json::from_slice(&reply.payload).unwrap_or_default();
            if v.get("error").is_none() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "JetStream never became available"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A three-node NATS cluster with the stream and buckets replicated three times: one NATS
/// server killed and started again, the nodes fail over to the others, keep their clients,
/// and the sequence carries on with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_nats_cluster_outlives_one_server() {
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let mut servers = Nats::start_cluster(&bin, material.dir.path());
    let urls: Vec<String> = servers.iter().map(Nats::url).collect();
    let urls = urls.join(",");
    wait_jetstream(&servers[0].url()).await;
    let (producer, edge) = producer_and_edge(&material, &urls, &[("cluster.replicas", "3")]).await;
    let (token, publisher) = tokens(&material);
    let ca = material.path("cert.pem");
    let stop = CancellationToken::new();
    let client = read_on(&edge, &material, &token, &stop);
    publish(producer.listen, &ca, &publisher, 0, 5).await;

    servers[0].kill();
    let during = publish(edge.listen, &ca, &publisher, 5, 5).await;
    servers[0].run();
    let after = publish(producer.listen, &ca, &publisher, 10, 5).await;
    let last = *after.last().unwrap();
    wait_for(
        "everything through the NATS cluster",
        Duration::from_secs(30),
        || client.lock().unwrap().last() >= last,
    )
    .await;
    stop.cancel();
    let frames = assert_same_sequence(std::slice::from_ref(&client));
    for seq in during.iter().chain(&after) {
        assert!(frames[seq].contains("PUBUSDT"));
    }
    assert_eq!(
        client.lock().unwrap().connects,
        1,
        "the edge kept its client"
    );
    assert_no_duplicate_signal(&frames);
    assert_verifies(&edge, &ca, &frames).await;
}

/// Start errors are one clear line and a non-zero exit: NATS unreachable, JetStream not
/// enabled, and a stream of that name with other subjects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_start_errors_are_clear() {
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let run = |name: &str, nats: &str| {
        let (mut child, log) = spawn_node(&material, name, "edge", nats, &[]);
        let status = child.wait().unwrap();
        assert!(!status.success());
        std::fs::read_to_string(log).unwrap()
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let text = run("unreachable", &format!("nats://{closed}"));
    assert!(
        text.contains("cluster.nats: cannot reach NATS at"),
        "{text}"
    );

    let plain_dir = material.path("plain");
    std::fs::create_dir_all(&plain_dir).unwrap();
    let plain = Nats::start(&bin, &plain_dir, false);
    let text = run("nojs", &plain.url());
    assert!(text.contains("JetStream is not enabled"), "{text}");

    let nats = Nats::start(&bin, material.dir.path(), true);
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "SIGCAST_SIGNALS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let text = run("conflict", &nats.url());
    assert!(
        text.contains(
            "cluster.stream: the stream SIGCAST_SIGNALS exists with subjects [\"orders.>\"]"
        ),
        "{text}"
    );
}

/// Two producers appending at once, as leaders overlap for a moment in a takeover: each
/// append the other got in first is refused and sealed afresh from the stream's tail, so
/// the stream holds one unbroken chain signed by both keys, every signal stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_at_once_keep_one_chain() {
    use sigcast::cluster::{Cluster, chain::Writer, from_stored, keys::JournalKey};
    use sigcast::hub::Outgoing;
    use sigcast::strategy::{Side, Signal};
    let Some(bin) = nats_bin() else { return };
    let material = Material::new();
    let nats = Nats::start(&bin, material.dir.path(), true);
    let mut settings = material.config(&[]).cluster;
    settings.nats = nats.url();
    let cluster = Cluster::connect(&settings, Duration::from_secs(3600), 100_000)
        .await
        .unwrap();
    // 60 signals both emit (the same ids, as two producers' strategies make them) and 30
    // each of their own.
    let batch = |own: &str| -> Vec<Outgoing> {
        // Each of its own, then two of both: the writers race for the shared ones.
        (0..30)
            .flat_map(|i| {
                [
                    (format!("{own}-{i}"), 100 + i),
                    (format!("shared-{}", 2 * i), 2 * i),
                    (format!("shared-{}", 2 * i + 1), 2 * i + 1),
                ]
            })
            .map(|(id, i)| Outgoing {
                signal: Signal {
                    side: Side::Buy,
                    symbol: "BTCUSDT".into(),
                    price: 100.0 + f64::from(i),
                    timestamp: 1_720_000_000 + i64::from(i),
                    strategy: "both".into(),
                    interval: "1m".into(),
                    reason: id.clone(),
                },
                id,
                ack: None,
            })
            .collect()
    };
    let mut keys = Vec::new();
    for name in ["a", "b"] {
        let dir = material.path(&format!("data-{name}"));
        keys.push((name, JournalKey::open(&cluster, &dir).await.unwrap()));
    }
    // Both start together, a few signals a batch, so their appends interleave.
    let start = Arc::new(tokio::sync::Barrier::new(2));
    let mut writers = Vec::new();
    for (name, key) in keys {
        let (cluster, mut pending, start) = (cluster.clone(), batch(name), start.clone());
        writers.push(tokio::spawn(async move {
            let mut writer = Writer::new(key);
            let mut conflicts = 0;
            start.wait().await;
            while !pending.is_empty() {
                let take = pending.len().min(3);
                let rest = pending.split_off(take);
                let unsent = writer.append(&cluster, pending, 0).await;
                conflicts += usize::from(unsent.conflict);
                pending = unsent.signals;
                pending.extend(rest);
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for w in writers {
        conflicts += common::within(Duration::from_secs(60), w).await.unwrap();
    }
    let stream = cluster.stream().await.unwrap();
    let mut messages = Cluster::messages_from(&stream, 1).await.unwrap();
    let mut frames = BTreeMap::new();
    while frames.len() < 120 {
        let m = common::within(Duration::from_secs(5), messages.next())
            .await
            .unwrap()
            .unwrap();
        let seq = m.info().unwrap().stream_sequence;
        let (_, frame) = from_stored(seq, &m.payload).unwrap();
        frames.insert(seq, frame.to_string());
    }
    let info = cluster
        .stream()
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .clone();
    assert_eq!(info.messages, 120, "60 shared + 30 + 30, each stored once");
    assert_no_duplicate_signal(&frames);
    let mut keys = KeySet::default();
    for name in ["a", "b"] {
        let dir = sigcast::hub::proof::KeyDir::of(&material.path(&format!("data-{name}")));
        keys.keys.extend(dir.public_keys().unwrap().keys);
    }
    let verdict = verify(&keys, frames.values().map(String::as_str));
    assert!(verdict.passed() && verdict.chain_start, "{verdict}");
    assert_eq!(verdict.verified, 120, "{verdict}");
    assert_eq!(verdict.kids.len(), 2, "{verdict}");
    eprintln!("two writers: {conflicts} appends refused and sealed afresh");

    // One batch, half of it stored already (retries after lost acks): those are confirmed
    // at their first seq, and the new ones chained on after the stream's last.
    let mut pending: Vec<Outgoing> = batch("c").into_iter().take(13).collect();
    pending.retain(|o| o.id.starts_with("c-") || o.id == "shared-1" || o.id == "shared-5");
    assert_eq!(pending.len(), 7);
    let key = JournalKey::open(&cluster, &material.path("data-a"))
        .await
        .unwrap();
    let mut writer = Writer::new(key);
    while !pending.is_empty() {
        pending = writer.append(&cluster, pending, 0).await.signals;
    }
    let mut messages = Cluster::messages_from(&stream, 121).await.unwrap();
    let mut chained = vec![frames[&120].clone()];
    for seq in 121..=125 {
        let m = common::within(Duration::from_secs(5), messages.next())
            .await
            .unwrap()
            .unwrap();
        let (_, frame) = from_stored(seq, &m.payload).unwrap();
        assert!(frame.as_str().contains("\"reason\":\"c-"), "{frame}");
        chained.push(frame.as_str().to_string());
    }
    let verdict = verify(&keys, chained.iter().map(String::as_str));
    assert!(verdict.passed() && verdict.verified == 6, "{verdict}");
    let info = cluster
        .stream()
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .clone();
    assert_eq!(info.messages, 125, "the stored ones not again");
}
