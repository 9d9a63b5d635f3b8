//! The `sigcast` binary as operators use it: init, token, serve (signals and SIGTERM), demo.
//!
//! About 1,350 lines: one test per operator command and its failure modes, sharing the
//! helpers that start the binary and read its output; split by command when it grows.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

fn sigcast(dir: &Path, args: &[&str]) -> std::process::Output {
    common::sigcast_command()
        .args(args)
        .current_dir(dir)
        .env_remove("SIGCAST_CONFIG")
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failed start: non-zero exit, one `sigcast: error:` line containing `needle`.
fn assert_clean_failure(out: &std::process::Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].starts_with("sigcast: error:") && lines[0].contains(needle),
        "{err}"
    );
}

/// A child process whose stdout and stderr lines arrive on channels.
struct Running {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Running {
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = common::sigcast_command()
            .args(args)
            .current_dir(dir)
            .env_remove("SIGCAST_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            rx
        };
        let stdout = pipe(Box::new(child.stdout.take().unwrap()));
        let stderr = pipe(Box::new(child.stderr.take().unwrap()));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The client port the server logged (`"listen"` of its JSON startup line).
    fn port(&self) -> u16 {
        Running::find(&self.stderr, |line| {
            let v: Value = serde_json::from_str(line).ok()?;
            let listen = v["fields"]["listen"].as_str()?;
            listen.rsplit(':').next()?.parse().ok()
        })
    }

    /// The first line on `which` for which `f` returns something, within 20 s.
    fn find<T>(which: &mpsc::Receiver<String>, mut f: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = which
                .recv_timeout(left)
                .expect("expected line did not appear");
            if let Some(v) = f(&line) {
                return v;
            }
        }
    }

    /// Every stderr line received so far (waits briefly for the pipe to catch up).
    fn stderr_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(500)) {
            lines.push(line);
        }
        lines
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for exit and returns its code.
    fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("process did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Port and token from the demo's `wscat -c wss://127.0.0.1:PORT -H "Authorization: Bearer TOKEN" -n`.
fn wscat_line(line: &str) -> (u16, &str) {
    let port = line
        .split("wss://127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line}"));
    let token = line
        .split("Bearer ")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no token in {line}"));
    (port, token)
}

/// Tries a client handshake on a local port, trusting `ca`.
async fn try_connect(port: u16, ca: &Path, token: &str) -> Result<Client, WsError> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let tls = tls_connect(addr, ca).await;
    let mut request = format!("wss://127.0.0.1:{port}")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    tokio_tungstenite::client_async(request, tls)
        .await
        .map(|(ws, _)| ws)
}

async fn connect(port: u16, ca: &Path, token: &str) -> Client {
    try_connect(port, ca, token).await.unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_config_cert_and_private_secret_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let out = sigcast(tmp.path(), &["init", "site"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let site = tmp.path().join("site");
    for f in [
        "sigcast.toml",
        "certs/cert.pem",
        "certs/key.pem",
        "jwt.secret",
        "signals/default.toml",
    ] {
        assert!(site.join(f).is_file(), "{f}");
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&site.join("jwt.secret")), 0o600);
        assert_eq!(mode(&site.join("certs/key.pem")), 0o600);
    }
    let secret = std::fs::read_to_string(site.join("jwt.secret")).unwrap();
    assert_eq!(secret.trim().len(), 64);
    // The certificate covers localhost, 127.0.0.1 and ::1, and the config loads as written.
    let check = sigcast(&site, &["config", "check"]);
    assert!(check.status.success(), "{}", stderr(&check));

    let again = sigcast(tmp.path(), &["init", "site"]);
    assert_clean_failure(&again, "refusing to overwrite");
    assert_eq!(
        std::fs::read_to_string(site.join("jwt.secret")).unwrap(),
        secret
    );

    let forced = sigcast(tmp.path(), &["init", "site", "--force"]);
    assert!(forced.status.success());
    assert_ne!(
        std::fs::read_to_string(site.join("jwt.secret")).unwrap(),
        secret
    );
}

#[test]
fn token_issue_then_verify() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(sigcast(tmp.path(), &["init"]).status.success());
    let out = sigcast(
        tmp.path(),
        &[
            "token", "issue", "--sub", "bot-1", "--ttl", "2h", "--jti", "t-42",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.lines().count(), 1, "the token alone on stdout");
    let token = token.trim();

    let out = sigcast(tmp.path(), &["token", "verify", token]);
    assert!(out.status.success(), "{}", stderr(&out));
    let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["sub"], "bot-1");
    assert_eq!(claims["jti"], "t-42");
    assert_eq!(claims["iss"], "sigcast");
    assert_eq!(claims["aud"], "sigcast-clients");
    let ttl = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(ttl, 7200);

    // A token from another server's secret is refused with a reason.
    let other = tempfile::tempdir().unwrap();
    assert!(sigcast(other.path(), &["init"]).status.success());
    let out = sigcast(other.path(), &["token", "verify", token]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("bad signature"), "{}", stderr(&out));

    // Flags reach the same settings as serve: --jwt-secret-file wins over the file.
    let out = sigcast(
        other.path(),
        &[
            "token",
            "verify",
            token,
            "--jwt-secret-file",
            tmp.path().join("jwt.secret").to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn serve_startup_errors_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(sigcast(tmp.path(), &["init"]).status.success());

    let out = sigcast(tmp.path(), &["serve", "--tls-cert", "nope/cert.pem"]);
    assert_clean_failure(&out, "nope/cert.pem");

    std::fs::write(tmp.path().join("short.secret"), "abc\n").unwrap();
    let out = sigcast(tmp.path(), &["serve", "--jwt-secret-file", "short.secret"]);
    assert_clean_failure(&out, "short.secret");

    let out = common::sigcast_command()
        .args(["serve"])
        .current_dir(tmp.path())
        .env("SIGCAST_SERVER_MAX_CONNECTIONS", "lots")
        .output()
        .unwrap();
    assert_clean_failure(&out, "server.max_connections");

    let out = sigcast(tmp.path(), &["serve", "--set", "auth.leeway=1m"]);
    assert_clean_failure(&out, "auth.leeway");

    let out = sigcast(tmp.path(), &["serve", "--listen", "not-an-address"]);
    assert_clean_failure(&out, "server.listen");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let out = sigcast(tmp.path(), &["serve", "--listen", &port]);
    assert_clean_failure(&out, "server.listen: cannot listen on");
    assert!(stderr(&out).contains("pass --listen"), "says what to do");

    let out = sigcast(tmp.path(), &["config", "check", "missing.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read config file missing.toml"));
}

/// The whole pipeline in the real binary: synthetic market → strategy → hub → client, then
/// SIGTERM closes the client with 1001 and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_broadcasts_strategy_signals_and_exits_cleanly_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(sigcast(tmp.path(), &["init"]).status.success());
    // A quick strategy so the test sees real signals within seconds.
    std::fs::write(
        tmp.path().join("signals/default.toml"),
        "[[strategy]]\nname = \"quick\"\nkind = \"ma_cross\"\nsymbols = [\"BTCUSDT\", \"ETHUSDT\", \"SOLUSDT\"]\ninterval = \"1s\"\n[strategy.params]\nfast = 1\nslow = 2\n",
    )
    .unwrap();
    let token =
        String::from_utf8(sigcast(tmp.path(), &["token", "issue", "--sub", "e2e"]).stdout).unwrap();
    let mut server = Running::start(
        tmp.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--set",
            "log.format=json",
            "--set",
            "source.tick=2ms",
        ],
    );
    let port = server.port();
    let mut ws = connect(port, &tmp.path().join("certs/cert.pem"), token.trim()).await;
    let signal: Value =
        serde_json::from_str(&within(Duration::from_secs(20), next_text(&mut ws)).await).unwrap();
    assert_eq!(signal["is_test"], false);
    assert!(["buy", "sell"].contains(&signal["type"].as_str().unwrap()));
    assert_eq!(signal["content"]["strategy"], "quick");
    assert_eq!(signal["content"]["interval"], "1s");
    assert!(signal["content"]["price"].as_f64().unwrap() > 0.0);
    let ts = signal["content"]["timestamp"].as_i64().unwrap();
    assert!(
        (ts - sigcast::clock::unix_now() as i64).abs() < 10,
        "timestamp in Unix seconds"
    );

    // A refused client: its (wrong-key) token must not reach the logs either.
    let forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.Zm9yZ2VkLXNpZ25hdHVyZS1zaWdjYXN0";
    match try_connect(port, &tmp.path().join("certs/cert.pem"), forged).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }

    server.signal("TERM");
    let (code, _) = expect_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, 1001);
    assert_eq!(server.wait(Duration::from_secs(5)), Some(0));
    let stderr_lines = server.stderr_lines();

    let logs = stderr_lines.join("\n");
    assert!(
        logs.contains("handshake refused"),
        "the refusal is logged: {logs}"
    );
    assert!(
        logs.contains("session opened") && logs.contains("\"sub\":\"e2e\""),
        "{logs}"
    );
    let secret = std::fs::read_to_string(tmp.path().join("jwt.secret")).unwrap();
    for needle in [forged, token.trim(), secret.trim()] {
        // Any long-enough piece of a token would be a leak, not just the whole of it.
        for piece in needle.split('.').filter(|p| p.len() >= 16) {
            assert!(!logs.contains(piece), "a token or secret reached the logs");
        }
    }
}

/// `sigcast demo`: one command, offline, prints a working token and wscat line; Ctrl-C exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_a_working_wscat_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut demo = Running::start(tmp.path(), &["demo", "--port", "0"]);
    let line = Running::find(&demo.stdout, |l| {
        l.starts_with("wscat -c ").then(|| l.to_string())
    });
    // wscat -c wss://127.0.0.1:PORT -H "Authorization: Bearer TOKEN" -n
    let (port, token) = wscat_line(&line);
    assert!(line.ends_with(" -n"), "{line}");
    let ca = tmp.path().join(".sigcast-demo/certs/cert.pem");
    let mut ws = connect(port, &ca, token).await;
    send_text(&mut ws, "test").await;
    let reply: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(reply["is_test"], true);

    demo.signal("INT");
    let (code, _) = expect_close(&mut ws, Duration::from_secs(5)).await;
    assert_eq!(code, 1001);
    assert_eq!(demo.wait(Duration::from_secs(5)), Some(0));
}

/// `--source replay:` plays real Binance futures trades through the strategy to a client:
/// prices and timestamps are the recording's, not the clock's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_replays_recorded_binance_trades() {
    let recording = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/binance/usdm_btcusdt_20240808.gz");
    let tmp = tempfile::tempdir().unwrap();
    assert!(sigcast(tmp.path(), &["init"]).status.success());
    std::fs::write(
        tmp.path().join("signals/default.toml"),
        "[[strategy]]\nname = \"replayed\"\nkind = \"ma_cross\"\nmarket = \"futures\"\nsymbols = [\"BTCUSDT\"]\ninterval = \"1s\"\n[strategy.params]\nfast = 1\nslow = 2\n",
    )
    .unwrap();
    let token =
        String::from_utf8(sigcast(tmp.path(), &["token", "issue", "--sub", "replay"]).stdout)
            .unwrap();
    let source = format!("replay:{}", recording.display());
    let mut server = Running::start(
        tmp.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--source",
            &source,
            "--set",
            "source.replay_speed=20x",
            "--set",
            "log.format=json",
        ],
    );
    let port = server.port();
    let mut ws = connect(port, &tmp.path().join("certs/cert.pem"), token.trim()).await;
    let signal: Value =
        serde_json::from_str(&within(Duration::from_secs(20), next_text(&mut ws)).await).unwrap();
    assert_eq!(signal["content"]["symbol"], "BTCUSDT");
    assert_eq!(signal["content"]["strategy"], "replayed");
    let price = signal["content"]["price"].as_f64().unwrap();
    assert!(
        (60_000.0..63_000.0).contains(&price),
        "a recorded BTC price: {price}"
    );
    let ts = signal["content"]["timestamp"].as_i64().unwrap();
    // The recording spans 2024-08-08 23:54 to 2024-08-09 00:05 UTC.
    assert!(
        (1_723_161_200..1_723_162_000).contains(&ts),
        "recording time: {ts}"
    );

    // `test` now quotes the replayed market.
    send_text(&mut ws, "test").await;
    let test = loop {
        let v: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        if v["is_test"] == true {
            break v;
        }
    };
    assert_eq!(test["content"]["symbol"], "BTCUSDT");
    let quoted = test["content"]["price"].as_f64().unwrap();
    assert!((60_000.0..63_000.0).contains(&quoted), "{quoted}");

    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(5)), Some(0));
}

#[test]
fn replay_of_a_missing_file_is_a_clear_startup_error() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(sigcast(tmp.path(), &["init"]).status.success());
    let out = sigcast(tmp.path(), &["serve", "--source", "replay:nowhere.gz"]);
    assert_clean_failure(&out, "nowhere.gz");
    let out = sigcast(tmp.path(), &["serve", "--source", "binance-please"]);
    assert_clean_failure(&out, "--source");
}

/// Starts `serve` on the synthetic market with `QUICK` and the given watch interval; returns
/// the process, its port and a token.
fn serve_quick(dir: &Path, watch: &str) -> (Running, u16, String) {
    let (server, token) = start_quick(dir, watch);
    let port = server.port();
    (server, port, token)
}

/// As [`serve_quick`], before anything of its log is read; the process and a token.
fn start_quick(dir: &Path, watch: &str) -> (Running, String) {
    assert!(sigcast(dir, &["init"]).status.success());
    std::fs::write(dir.join("signals/default.toml"), QUICK).unwrap();
    let token =
        String::from_utf8(sigcast(dir, &["token", "issue", "--sub", "ops"]).stdout).unwrap();
    let server = Running::start(
        dir,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--set",
            "log.format=json",
            "--set",
            "source.tick=2ms",
            "--set",
            &format!("signals.watch={watch}"),
        ],
    );
    (server, token.trim().to_string())
}

/// Reads signals until one comes from `strategy`.
async fn signal_from(ws: &mut Client, strategy: &str) -> Value {
    within(Duration::from_secs(20), async {
        loop {
            let v: Value = serde_json::from_str(&next_text(ws).await).unwrap();
            if v["content"]["strategy"] == strategy {
                return v;
            }
        }
    })
    .await
}

/// Editing `signals/` reloads the strategies; an invalid edit is refused with its error
/// (file, instance, key) and the running set carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategies_reload_when_files_change_and_a_bad_set_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, port, token) = serve_quick(tmp.path(), "200ms");
    let mut ws = connect(port, &tmp.path().join("certs/cert.pem"), &token).await;
    signal_from(&mut ws, "quick").await;

    let file = tmp.path().join("signals/default.toml");
    std::fs::write(&file, QUICK.replace("\"ma_cross\"", "\"nope\"")).unwrap();
    // (The watcher waits for files to hold still, so it never reads one half-written.)
    let rejected = Running::find(&server.stderr, |l| {
        l.contains("strategy reload rejected")
            .then(|| l.to_string())
    });
    assert!(
        rejected.contains("default.toml") && rejected.contains("nope"),
        "{rejected}"
    );
    signal_from(&mut ws, "quick").await; // still running

    std::fs::write(&file, QUICK.replace("\"quick\"", "\"renamed\"")).unwrap();
    let signal = signal_from(&mut ws, "renamed").await;
    assert_eq!(signal["content"]["interval"], "1s");
    let reloaded = Running::find(&server.stderr, |l| {
        l.contains("strategies reloaded").then(|| l.to_string())
    });
    assert!(
        reloaded.contains("\"added\":3") && reloaded.contains("\"removed\":3"),
        "{reloaded}"
    );
}

/// With file watching off, SIGHUP reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_strategies() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, port, token) = serve_quick(tmp.path(), "0s");
    let mut ws = connect(port, &tmp.path().join("certs/cert.pem"), &token).await;
    signal_from(&mut ws, "quick").await;
    std::fs::write(
        tmp.path().join("signals/default.toml"),
        QUICK.replace("\"quick\"", "\"after-hup\""),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    server.signal("HUP");
    let line = Running::find(&server.stderr, |l| {
        l.contains("reloading strategies").then(|| l.to_string())
    });
    assert!(line.contains("SIGHUP"), "{line}");
    signal_from(&mut ws, "after-hup").await;
}

fn futures_recording() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/binance/usdm_btcusdt_20240808.gz")
}

/// A signals directory with every built-in kind on futures BTCUSDT.
fn backtest_signals(dir: &Path) -> std::path::PathBuf {
    let signals = dir.join("bt-signals");
    std::fs::create_dir_all(&signals).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/backtest_signals.toml"),
        signals.join("all.toml"),
    )
    .unwrap();
    signals
}

/// `sigcast backtest` over the futures recording with `signals`, writing to `out`.
fn backtest(dir: &Path, signals: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let data = futures_recording();
    let mut args = vec![
        "backtest",
        "--data",
        data.to_str().unwrap(),
        "--signals",
        signals.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    sigcast(dir, &args)
}

/// `backtest` writes every signal in the contract shape, a summary per strategy and an HTML
/// report whose chart has one marker per signal; progress goes to stderr.
#[test]
fn backtest_writes_signals_summary_and_a_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let signals = backtest_signals(tmp.path());
    let out = tmp.path().join("report");
    let run = backtest(tmp.path(), &signals, &out, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("backtest: 100%"), "{}", stderr(&run));
    let lines: Vec<Value> = std::fs::read_to_string(out.join("signals.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 20, "{} signals", lines.len());
    for v in &lines {
        assert_eq!(v["is_test"], false);
        assert!(["buy", "sell"].contains(&v["type"].as_str().unwrap()));
        assert!(v["content"]["price"].as_f64().unwrap() > 50_000.0);
        assert!(v["content"]["timestamp"].as_i64().unwrap() > 1_723_000_000);
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let strategies = summary["strategies"].as_array().unwrap();
    assert_eq!(strategies.len(), 7, "every kind signalled: {summary}");
    for s in strategies {
        assert_eq!(s["horizons"].as_array().unwrap().len(), 3);
        let hit = s["horizons"][0]["hit_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&hit));
        assert!(s["naive_pnl_pct"].as_f64().unwrap().is_finite());
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("f-macd") && stdout.contains("P&L"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("<polyline"));
    let markers =
        html.matches("class=\"buy\" d=").count() + html.matches("class=\"sell\" d=").count();
    assert_eq!(markers, lines.len(), "one marker per signal");
    let fetched = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(
        !fetched.contains("http://") && !fetched.contains("https://"),
        "self-contained (nothing but the SVG namespace names a URL)"
    );

    // A window: only signals inside it, the data before only warms up.
    let windowed = tmp.path().join("windowed");
    let from = lines[lines.len() / 2]["content"]["timestamp"]
        .as_i64()
        .unwrap();
    let run = backtest(
        tmp.path(),
        &signals,
        &windowed,
        &["--from", &from.to_string()],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let inside = std::fs::read_to_string(windowed.join("signals.jsonl")).unwrap();
    assert!(!inside.is_empty());
    for l in inside.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert!(v["content"]["timestamp"].as_i64().unwrap() >= from);
    }
}

/// `serve --source replay:` gives a client exactly the signals `backtest` writes, byte for
/// byte, each sealed with the journal's proof (docs/verify.md), which verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_through_serve_gives_the_same_signals_as_backtest() {
    let tmp = tempfile::tempdir().unwrap();
    let signals = backtest_signals(tmp.path());
    let out = tmp.path().join("report");
    let run = backtest(tmp.path(), &signals, &out, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let expected: Vec<String> = std::fs::read_to_string(out.join("signals.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();

    assert!(sigcast(tmp.path(), &["init"]).status.success());
    let token =
        String::from_utf8(sigcast(tmp.path(), &["token", "issue", "--sub", "bt"]).stdout).unwrap();
    let source = format!("replay:{}", futures_recording().display());
    let dir = format!("signals.dir={}", signals.display());
    let server = Running::start(
        tmp.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--source",
            &source,
            "--set",
            "source.replay_speed=max",
            "--set",
            "source.replay_delay=3s",
            "--set",
            "server.queue_capacity=10000",
            "--set",
            &dir,
            "--set",
            "log.format=json",
        ],
    );
    let port = server.port();
    let mut ws = connect(port, &tmp.path().join("certs/cert.pem"), token.trim()).await;
    let mut got = Vec::new();
    within(Duration::from_secs(60), async {
        while got.len() < expected.len() {
            got.push(next_text(&mut ws).await);
        }
    })
    .await;
    expect_silence(&mut ws, Duration::from_secs(1)).await;
    let unsealed: Vec<String> = got
        .iter()
        .map(|frame| sigcast::hub::proof::open(frame).expect("signed").canonical)
        .collect();
    assert_eq!(unsealed, expected);
    let keys = sigcast::hub::proof::KeyDir::of(&tmp.path().join("data"))
        .public_keys()
        .unwrap();
    let mut verifier = sigcast::hub::proof::verify::Verifier::new(&keys, false);
    for frame in &got {
        verifier.line(frame);
    }
    let verdict = verifier.finish();
    assert!(verdict.passed() && verdict.chain_start, "{verdict}");
    assert_eq!(verdict.verified, expected.len());
}

/// The shipped signals/ (example.toml and default.toml) run offline in `sigcast demo`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_shipped_example_strategies() {
    let tmp = tempfile::tempdir().unwrap();
    let signals = Path::new(env!("CARGO_MANIFEST_DIR")).join("signals");
    let demo = Running::start(
        tmp.path(),
        &[
            "demo",
            "--port",
            "0",
            "--signals",
            signals.to_str().unwrap(),
        ],
    );
    let line = Running::find(&demo.stdout, |l| {
        l.starts_with("wscat -c ").then(|| l.to_string())
    });
    let (port, token) = wscat_line(&line);
    let ca = tmp.path().join(".sigcast-demo/certs/cert.pem");
    let mut ws = connect(port, &ca, token).await;
    let mut seen = std::collections::BTreeSet::new();
    within(Duration::from_secs(90), async {
        while seen.len() < 3 {
            let text = match ws.next().await.expect("open").expect("read") {
                Message::Text(t) => t.as_str().to_string(),
                _ => continue,
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            let name = v["content"]["strategy"].as_str().unwrap().to_string();
            if name.starts_with("ex-") {
                seen.insert(name);
            }
        }
    })
    .await;
}

/// Tokens are recorded when issued, listed with their state, and revoked ones are refused at
/// the handshake; a live session using one is closed 1008 "token revoked" within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_are_refused_and_their_sessions_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, port, token) = serve_quick(tmp.path(), "2s");
    let ca = tmp.path().join("certs/cert.pem");
    let other = String::from_utf8(
        sigcast(
            tmp.path(),
            &["token", "issue", "--sub", "other", "--symbols", "BTCUSDT"],
        )
        .stdout,
    )
    .unwrap();
    let list = String::from_utf8(sigcast(tmp.path(), &["token", "list"]).stdout).unwrap();
    assert_eq!(list.matches(" active ").count(), 2, "{list}");
    assert!(list.contains("symbols=BTCUSDT"), "{list}");
    assert!(
        !list.contains(&token) && !list.contains(other.trim()),
        "tokens are never stored"
    );

    let mut ws = connect(port, &ca, &token).await;
    let mut ws_other = connect(port, &ca, other.trim()).await;
    signal_from(&mut ws, "quick").await;
    let jti = list
        .lines()
        .find(|l| l.contains(" ops "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let out = sigcast(tmp.path(), &["token", "revoke", &jti]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(2)).await;
    assert_eq!((code, reason.as_str()), (1008, "token revoked"));
    match try_connect(port, &ca, &token).await {
        Err(WsError::Http(r)) => {
            assert_eq!(r.status(), 401);
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("token revoked"), "{body}");
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // The other token still works until its subject is revoked.
    signal_from(&mut ws_other, "quick").await;
    let out = sigcast(tmp.path(), &["token", "revoke", "--sub", "other"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, _) = expect_close(&mut ws_other, Duration::from_secs(2)).await;
    assert_eq!(code, 1008);
    let list = String::from_utf8(sigcast(tmp.path(), &["token", "list"]).stdout).unwrap();
    assert_eq!(list.matches(" revoked ").count(), 2, "{list}");

    // `token verify` refuses what the server refuses: a revoked token exits 1.
    let out = sigcast(tmp.path(), &["token", "verify", &token]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("token revoked"), "{}", stderr(&out));
}

/// A token dated ahead of the clock is refused (401, and by `token verify`); one dated as far
/// ahead as the leeway allows is taken, and a revocation of its subject still reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_dated_ahead_cannot_escape_its_subjects_revocation() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, port, _) = serve_quick(tmp.path(), "2s");
    let ca = tmp.path().join("certs/cert.pem");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let dated = |ahead: u64| {
        signed(
            tmp.path(),
            serde_json::json!({"sub": "mallory", "jti": format!("ahead-{ahead}"), "iat": now + ahead, "exp": now + 86_400}),
        )
    };
    for ahead in [3600, 86_400] {
        let token = dated(ahead);
        match try_connect(port, &ca, &token).await {
            Err(WsError::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!(
                "iat {ahead}s ahead: expected 401, got {:?}",
                other.map(|_| ())
            ),
        }
        let out = sigcast(tmp.path(), &["token", "verify", &token]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("issued in the future"),
            "{}",
            stderr(&out)
        );
    }
    let within_leeway = dated(4);
    let mut ws = connect(port, &ca, &within_leeway).await;
    signal_from(&mut ws, "quick").await;
    let out = sigcast(tmp.path(), &["token", "revoke", "--sub", "mallory"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, reason) = expect_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!((code, reason.as_str()), (1008, "token revoked"));
    match try_connect(port, &ca, &within_leeway).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
}

/// A token signed with the init'd secret, with the claims given (iss and aud filled in).
fn signed(dir: &Path, claims: Value) -> String {
    let secret = std::fs::read_to_string(dir.join("jwt.secret")).unwrap();
    let mut claims = claims;
    claims["iss"] = "sigcast".into();
    claims["aud"] = claims
        .get("aud")
        .cloned()
        .unwrap_or("sigcast-clients".into());
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
    )
    .unwrap()
}

/// The logs of a run full of refused handshakes name each refusal (reason, peer, and the
/// token's `sub`/`jti` when its signature is good) and each disconnect (code and reason),
/// and never contain a token, a part of one, or the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_name_refusals_and_closes_but_never_a_token_or_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, port, good) = serve_quick(tmp.path(), "0s");
    let ca = tmp.path().join("certs/cert.pem");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = signed(
        tmp.path(),
        serde_json::json!({"sub": "late-sub", "jti": "late-jti", "iat": now - 7200, "exp": now - 3600}),
    );
    let wrong_audience = signed(
        tmp.path(),
        serde_json::json!({"sub": "aud-sub", "jti": "aud-jti", "iat": now, "exp": now + 600, "aud": "elsewhere"}),
    );
    let (head, _) = good.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", "A".repeat(43));
    let revoked =
        String::from_utf8(sigcast(tmp.path(), &["token", "issue", "--sub", "gone"]).stdout)
            .unwrap()
            .trim()
            .to_string();
    let out = sigcast(tmp.path(), &["token", "revoke", "--sub", "gone"]);
    assert!(out.status.success(), "{}", stderr(&out));
    tokio::time::sleep(Duration::from_millis(2500)).await; // the server picks it up within 2 s

    for bad in [
        &expired,
        &wrong_audience,
        &forged,
        &revoked,
        &"not.a.token".to_string(),
    ] {
        match try_connect(port, &ca, bad).await {
            Err(WsError::Http(r)) => assert_eq!(r.status(), 401),
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    }
    let mut ws = connect(port, &ca, &good).await;
    signal_from(&mut ws, "quick").await;
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 1000.into(),
        reason: "bye\nforged line".into(),
    }))
    .await
    .unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
    let lines = server.stderr_lines();

    let secret = std::fs::read_to_string(tmp.path().join("jwt.secret")).unwrap();
    let mut secrets = vec![secret.trim().to_string()];
    for token in [&good, &expired, &wrong_audience, &forged, &revoked] {
        secrets.push(token.clone());
        // Each part of a token alone (header, claims, signature) gives something away too.
        secrets.extend(token.split('.').filter(|p| p.len() > 16).map(String::from));
    }
    for line in &lines {
        for s in &secrets {
            assert!(
                !line.contains(s.as_str()),
                "a token or secret in the log: {line}"
            );
        }
    }

    let events: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let refusals: Vec<&Value> = events
        .iter()
        .map(|e| &e["fields"])
        .filter(|f| f["message"] == "handshake refused: 401")
        .collect();
    let refusal = |reason: &str| {
        refusals
            .iter()
            .find(|f| f["reason"] == reason)
            .unwrap_or_else(|| panic!("no refusal for {reason}: {refusals:?}"))
    };
    let late = refusal("token expired");
    assert_eq!(
        (late["sub"].as_str(), late["jti"].as_str()),
        (Some("late-sub"), Some("late-jti"))
    );
    assert!(late["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(refusal("wrong audience")["sub"], "aud-sub");
    assert_eq!(refusal("token revoked")["sub"], "gone");
    let bad = refusal("bad signature");
    assert!(
        bad.get("sub").is_none(),
        "a forged token's claims are not believed: {bad}"
    );
    assert!(refusal("malformed token").get("sub").is_none());

    let opened = events
        .iter()
        .map(|e| &e["fields"])
        .find(|f| f["message"] == "session opened")
        .expect("a session-opened event");
    assert_eq!(opened["sub"], "ops");
    let closed = events
        .iter()
        .map(|e| &e["fields"])
        .find(|f| f["message"] == "session closed by client")
        .expect("a session-closed event");
    assert_eq!(closed["code"], 1000);
    assert_eq!(
        closed["reason"], "\"bye\\nforged line\"",
        "escaped client text"
    );
    assert!(closed["jti"].as_str().is_some_and(|j| !j.is_empty()));
}

/// `config check FILE` goes past the first problem: every bad key of the file, the env and
/// the flags, the relations between keys, the TLS key and each bad strategy file, each on a
/// line naming its key or file, then exit 1. A good set says so and exits 0.
#[test]
fn config_check_prints_every_problem_with_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(sigcast(dir, &["init"]).status.success());
    let ok = sigcast(dir, &["config", "check", "sigcast.toml"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "configuration OK\n");

    let config = std::fs::read_to_string(dir.join("sigcast.toml")).unwrap();
    let config = config
        .replacen(
            "max_connections = ",
            "bogus = 1\nmax_connections = 0\n# was ",
            1,
        )
        .replacen(
            "ping_interval = \"",
            "ping_interval = \"soon\"\n# was \"",
            1,
        );
    std::fs::write(dir.join("broken.toml"), config).unwrap();
    std::fs::write(dir.join("certs/key.pem"), "not a key\n").unwrap();
    std::fs::write(
        dir.join("signals/zz-bad.toml"),
        "[[strategy]]\nname = \"q\"\nkind = \"nope\"\nsymbol = \"BTCUSDT\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("signals/zz-twice.toml"),
        "[[strategy]]\nname = \"q2\"\nkind = \"rsi\"\nsymbol = \"BTCUSDT\"\ninterval = \"1m\"\n[[strategy]]\nname = \"q2\"\nkind = \"rsi\"\nsymbol = \"ETHUSDT\"\ninterval = \"1m\"\n",
    )
    .unwrap();
    let out = common::sigcast_command()
        .args([
            "config",
            "check",
            "broken.toml",
            "--set",
            "admin.listen=nowhere",
        ])
        .current_dir(dir)
        .env("SIGCAST_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    let expected = [
        "broken.toml: server.bogus: unknown field",
        "broken.toml: server.ping_interval: expected a duration",
        "SIGCAST_LOG_FORMAT: log.format: unknown variant `yaml`",
        "flag: admin.listen: expected HOST:PORT",
        "server.max_connections: must be at least 1",
        "tls.key: private key file",
        "zz-bad.toml",
        "strategy name \"q2\" is used twice",
    ];
    for want in expected {
        assert!(
            err.lines()
                .any(|l| l.starts_with("sigcast: config: ") && l.contains(want)),
            "{want:?} not in\n{err}"
        );
    }
    assert!(
        err.ends_with(&format!("sigcast: {} problem(s) found\n", expected.len())),
        "{err}"
    );
}

/// `sigcast healthcheck` (the image's HEALTHCHECK) asks the admin listener: 0 on 200 for
/// /healthz and, once the synthetic market runs and strategies are fed, for /readyz; 1 with
/// a one-line error when nothing answers.
#[test]
fn healthcheck_asks_the_admin_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut server, _) = start_quick(dir, "2s");
    let admin = Running::find(&server.stderr, |line| {
        let v: Value = serde_json::from_str(line).ok()?;
        v["fields"]["admin"].as_str().map(String::from)
    });
    let health = sigcast(dir, &["healthcheck", "--admin", &admin]);
    assert!(health.status.success(), "{}", stderr(&health));
    assert_eq!(String::from_utf8_lossy(&health.stdout), "ok\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let out = sigcast(dir, &["healthcheck", "--ready", "--admin", &admin]);
        if out.status.success() {
            break out;
        }
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            std::time::Instant::now() < deadline,
            "never ready: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let body = String::from_utf8_lossy(&ready.stdout);
    assert!(
        body.contains("upstream: ok (1 of 1") && body.contains("strategies: ok (3 of 3 warm)"),
        "{body}"
    );

    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
    let down = sigcast(dir, &["healthcheck", "--admin", &admin]);
    assert_eq!(down.status.code(), Some(1));
    assert_clean_failure(&down, &format!("admin listener {admin}"));
}

/// SIGHUP reads the certificate, key and JWT secret again: a renewed certificate is served
/// and tokens of the new secret work (the old ones no longer), without a restart and without
/// dropping the sessions already open. A broken file on a later SIGHUP is logged and the
/// running certificate stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_jwt_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, port, old_token) = serve_quick(tmp.path(), "0s");
    let mut open = connect(port, &tmp.path().join("certs/cert.pem"), &old_token).await;
    signal_from(&mut open, "quick").await;

    // What an operator's renewal and rotation leave on disk: another pair, another secret.
    let fresh = tempfile::tempdir().unwrap();
    assert!(sigcast(fresh.path(), &["init"]).status.success());
    let new_token =
        String::from_utf8(sigcast(fresh.path(), &["token", "issue", "--sub", "rotated"]).stdout)
            .unwrap()
            .trim()
            .to_string();
    for file in ["certs/cert.pem", "certs/key.pem", "jwt.secret"] {
        std::fs::copy(fresh.path().join(file), tmp.path().join(file)).unwrap();
    }
    server.signal("HUP");
    Running::find(&server.stderr, |l| {
        l.contains("TLS certificate reloaded").then_some(())
    });
    Running::find(&server.stderr, |l| {
        l.contains("JWT keys reloaded").then_some(())
    });

    let new_ca = fresh.path().join("certs/cert.pem");
    let mut rotated = connect(port, &new_ca, &new_token).await;
    signal_from(&mut rotated, "quick").await;
    match try_connect(port, &new_ca, &old_token).await {
        Err(WsError::Http(r)) => assert_eq!(r.status(), 401, "the old secret is gone"),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    signal_from(&mut open, "quick").await; // the session from before carries on

    std::fs::write(tmp.path().join("certs/key.pem"), "broken\n").unwrap();
    server.signal("HUP");
    let line = Running::find(&server.stderr, |l| {
        l.contains("TLS certificate not reloaded")
            .then(|| l.to_string())
    });
    assert!(line.contains("tls.key"), "{line}");
    connect(port, &new_ca, &new_token).await; // still served
}

/// docs/configuration.md's key table is exactly what `sigcast config keys` prints; with
/// `SIGCAST_BLESS=1` the test writes it there instead.
#[test]
fn docs_configuration_is_what_config_keys_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = sigcast(tmp.path(), &["config", "keys"]);
    assert!(keys.status.success());
    let table = String::from_utf8(keys.stdout).unwrap();
    let rows = table.lines().filter(|l| l.starts_with("| `")).count();
    assert_eq!(rows, sigcast::config::KEYS.len());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = ("-->\n", "<!-- end of sigcast config keys -->");
    let start = doc
        .find("| key |")
        .expect("docs/configuration.md has the key table");
    let stop = doc
        .find(end)
        .expect("docs/configuration.md marks the table's end");
    let shown = &doc[start..stop];
    if shown != table && std::env::var_os("SIGCAST_BLESS").is_some() {
        std::fs::write(&path, format!("{}{table}{}", &doc[..start], &doc[stop..])).unwrap();
        return;
    }
    assert!(
        doc[..start].ends_with(begin),
        "the table follows its comment"
    );
    assert!(
        shown == table,
        "docs/configuration.md differs from `sigcast config keys`; \
         SIGCAST_BLESS=1 cargo test --test it docs_configuration writes it anew"
    );
}

/// A log nobody reads any more (a stalled collector, a paused terminal) does not stall the
/// server: its serving threads only queue lines, and the lines are all there once the reader
/// comes back (far fewer than the queue holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_reader_that_stops_reading_does_not_stall_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(sigcast(tmp.path(), &["init"]).status.success());
    let token = String::from_utf8(sigcast(tmp.path(), &["token", "issue", "--sub", "logs"]).stdout)
        .unwrap();
    let mut child = common::sigcast_command()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--set",
            "log.format=json",
        ])
        .current_dir(tmp.path())
        .env_remove("SIGCAST_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(child.stderr.take().unwrap());
    let port: u16 = loop {
        let mut line = String::new();
        assert!(log.read_line(&mut line).unwrap() > 0, "serve exited early");
        let listen = serde_json::from_str::<Value>(&line).ok().and_then(|v| {
            let listen = v["fields"]["listen"].as_str()?.to_string();
            listen.rsplit(':').next()?.parse().ok()
        });
        if let Some(port) = listen {
            break port;
        }
    };

    // From here nobody reads the log. Each session writes two lines of about 200 bytes, so
    // the pipe (64 KiB) is full after about 160 sessions; a server writing its log on its
    // serving threads stops there.
    let ca = tmp.path().join("certs/cert.pem");
    const SESSIONS: usize = 400;
    for i in 0..SESSIONS {
        within(Duration::from_secs(10), async {
            let mut ws = connect(port, &ca, token.trim()).await;
            ws.close(None).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "server exited at session {i}"
        );
    }
    let mut ws = within(Duration::from_secs(10), connect(port, &ca, token.trim())).await;
    send_text(&mut ws, "test").await;
    let reply = within(Duration::from_secs(10), async {
        loop {
            let v: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
            if v["is_test"] == true {
                return v;
            }
        }
    })
    .await;
    assert!(["buy", "sell"].contains(&reply["type"].as_str().unwrap()));

    // The reader is back: every session's lines come out, none were dropped.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut opened = 0;
        for line in log.lines().map_while(Result::ok) {
            if line.contains("session opened") {
                opened += 1;
                let _ = tx.send(opened);
            }
        }
    });
    let mut opened = 0;
    while opened < SESSIONS + 1 {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(n) => opened = n,
            Err(_) => break,
        }
    }
    let _ = child.kill();
    assert_eq!(opened, SESSIONS + 1, "every session opened is in the log");
}

/// `record` that gets no message (here: nothing listens where the upstream should be) fails,
/// saying so, rather than exiting 0 with an empty file.
#[test]
fn record_with_no_upstream_fails_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let out = sigcast(
        tmp.path(),
        &[
            "record",
            "--streams",
            "btcusdt@aggTrade",
            "--out",
            "capture.jsonl",
            "--duration",
            "2s",
            "--set",
            "binance.spot_ws=ws://127.0.0.1:9",
            "--set",
            "log.level=off",
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("recorded nothing to capture.jsonl"), "{err}");
}

/// A missing `--data` file is one line that names it and gives the reason once; a comma
/// separates files as a second value would.
#[test]
fn backtest_names_a_missing_recording_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = sigcast(tmp.path(), &["backtest", "--data", "gone.gz,other.gz"]);
    assert_clean_failure(&out, "cannot open recording gone.gz");
    let err = stderr(&out);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

/// A backtest with no signal says why: the strategies' markets beside the data's.
#[test]
fn a_backtest_without_signals_names_the_markets_on_both_sides() {
    let tmp = tempfile::tempdir().unwrap();
    let signals = Path::new(env!("CARGO_MANIFEST_DIR")).join("signals");
    let out = tmp.path().join("report");
    let run = backtest(tmp.path(), &signals, &out, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let err = stderr(&run);
    assert!(
        err.contains("no signals")
            && err.contains("trade spot BTCUSDT")
            && err.contains("the data holds futures BTCUSDT"),
        "{err}"
    );
}
