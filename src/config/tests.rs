//! The layering, the checks and the keys' table, against files, environments and flags.

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_valid() {
    let c = Config::load(None, &BTreeMap::new(), &Overrides::default()).unwrap();
    assert_eq!(c.server.max_connections, 10_000);
    assert_eq!(c.auth.issuer, "sigcast");
}

#[test]
fn flags_beat_env_beat_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sigcast.toml");
    std::fs::write(
        &file,
        "[server]\nmax_connections = 10\nlisten = \"127.0.0.1:1\"\n[tls]\ncert = \"c.pem\"\n",
    )
    .unwrap();
    let e = env(&[
        ("SIGCAST_SERVER_MAX_CONNECTIONS", "20"),
        ("SIGCAST_SERVER_LISTEN", "127.0.0.1:2"),
    ]);
    let mut o = Overrides::default();
    o.set("server.listen", "127.0.0.1:3");
    let c = Config::load(Some(&file), &e, &o).unwrap();
    assert_eq!(c.server.max_connections, 20);
    assert_eq!(c.server.listen.port(), 3);
    assert_eq!(c.tls.cert.unwrap(), dir.path().join("c.pem"));
}

#[test]
fn errors_name_the_key() {
    let e = env(&[("SIGCAST_SERVER_MAX_CONNECTIONS", "lots")]);
    let err = Config::load(None, &e, &Overrides::default()).unwrap_err();
    assert!(err.to_string().contains("server.max_connections"), "{err}");

    let mut o = Overrides::default();
    o.set("auth.leeway", "30s");
    let err = Config::load(None, &BTreeMap::new(), &o).unwrap_err();
    assert!(err.to_string().starts_with("auth.leeway"), "{err}");

    let mut o = Overrides::default();
    o.set("server.nope", "1");
    let err = Config::load(None, &BTreeMap::new(), &o).unwrap_err();
    assert!(err.to_string().contains("server.nope"), "{err}");

    let mut o = Overrides::default();
    o.set("server.coalesce", "2s");
    let err = Config::load(None, &BTreeMap::new(), &o).unwrap_err();
    assert!(err.to_string().starts_with("server.coalesce"), "{err}");
    let mut o = Overrides::default();
    o.set("server.coalesce", "0s");
    let off = Config::load(None, &BTreeMap::new(), &o).unwrap();
    assert!(off.server.coalesce.is_zero());

    let mut o = Overrides::default();
    o.set("server.worker_threads", "5000");
    let err = Config::load(None, &BTreeMap::new(), &o).unwrap_err();
    assert!(
        err.to_string().starts_with("server.worker_threads"),
        "{err}"
    );
    o.set("server.worker_threads", "1");
    let config = Config::load(None, &BTreeMap::new(), &o).unwrap();
    assert_eq!(config.server.worker_threads, 1);
}

#[test]
fn load_checked_reports_every_problem_and_keeps_the_good_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigcast.toml");
    std::fs::write(
        &path,
        "stray = 1\n[server]\nmax_connections = 0\nping_interval = \"soon\"\nqueue_capacity = 7\n[admin]\nlisten = \"x\"\n",
    )
    .unwrap();
    let e = env(&[("SIGCAST_LOG_FORMAT", "yaml")]);
    let mut o = Overrides::default();
    o.set("source.tick", "never");
    o.set("source.replay_speed", "fast");
    let (config, problems) = Config::load_checked(Some(&path), &e, &o);
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let expect = [
        "sigcast.toml: stray: unknown field",
        "sigcast.toml: server.ping_interval: ",
        "sigcast.toml: admin.listen: ",
        "SIGCAST_LOG_FORMAT: log.format: unknown variant `yaml`",
        "flag: source.tick: expected a duration",
        "flag: source.replay_speed: \"fast\" is not a replay speed",
        "server.max_connections: must be at least 1",
    ];
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    for want in expect {
        assert!(
            lines.iter().any(|l| l.contains(want)),
            "{want:?} not in {lines:#?}"
        );
    }
    let config = config.expect("the good keys still make a configuration");
    assert_eq!(config.server.queue_capacity, 7);
    let err = Config::load(Some(&path), &e, &o).unwrap_err();
    assert!(
        err.to_string().contains("admin.listen"),
        "load stops at the first: {err}"
    );
}

#[test]
fn show_redacts_the_proxy_password() {
    let mut o = Overrides::default();
    o.set("binance.proxy", "socks5://trader:hunter2@10.0.0.1:1080");
    let shown = Config::load(None, &BTreeMap::new(), &o).unwrap().to_toml();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("socks5://trader:***@10.0.0.1:1080"),
        "{shown}"
    );
    assert_eq!(
        redact_password("socks5://10.0.0.1:1080"),
        "socks5://10.0.0.1:1080"
    );
}

#[test]
fn file_errors_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sigcast.toml");
    std::fs::write(&file, "[server]\nmax_conections = 10\n").unwrap();
    let err = Config::load(Some(&file), &BTreeMap::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sigcast.toml") && err.contains("max_conections"),
        "{err}"
    );

    std::fs::write(&file, "[server]\nping_interval = \"soon\"\n").unwrap();
    let err = Config::load(Some(&file), &BTreeMap::new(), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("ping_interval"), "{err}");
}

#[test]
fn every_key_is_a_real_setting() {
    // Setting each key to a value of its kind must deserialize: KEYS and the structs agree.
    for key in KEYS {
        let text = match key.kind {
            Kind::Text => match key.name {
                "source.kind" => "synthetic",
                "cluster.role" => "edge",
                "cluster.nats" => "nats://127.0.0.1:4222",
                "cluster.subjects" => "a.b",
                "source.replay_speed" => "max",
                "binance.spot_ws" | "binance.futures_ws_public" | "binance.futures_ws_market" => {
                    "ws://127.0.0.1:1"
                }
                "binance.spot_rest" | "binance.futures_rest" => "http://127.0.0.1:1",
                "binance.proxy" => "socks5://127.0.0.1:1080",
                "log.format" => "json",
                "log.level" => "debug",
                "ledger.positions" => "long_short",
                _ => "x",
            },
            Kind::Path => "/tmp/x",
            Kind::Integer
                if key.name.starts_with("binance.") || key.name.starts_with("market_data.") =>
            {
                "3"
            }
            Kind::Integer => "4096",
            Kind::Duration => "2s",
            Kind::Address => "127.0.0.1:9",
            Kind::List if key.name == "server.allowed_origins" => "https://a.example,*",
            Kind::List => "BTCUSDT,ETHUSDT",
            Kind::PathList => "/tmp/a.gz,/tmp/b.txt",
            Kind::Bool => "true",
            Kind::Number if key.name == "ledger.capital" => "20000",
            Kind::Number => "1.5",
        };
        let mut o = Overrides::default();
        o.set(key.name, text);
        if key.name == "server.ping_interval" {
            o.set("server.idle_timeout", "60s");
        }
        if key.name == "server.idle_timeout" {
            o.set("server.ping_interval", "1s");
        }
        match key.name {
            "cluster.role" => o.set("cluster.nats", "nats://127.0.0.1:4222"),
            "cluster.replicas" => o.set(key.name, "3"),
            "server.worker_threads" => o.set(key.name, "2"),
            "server.coalesce" => o.set(key.name, "20ms"),
            "cluster.duplicate_window" => o.set("cluster.lease", "1s"),
            _ => {}
        }
        Config::load(None, &BTreeMap::new(), &o).unwrap_or_else(|e| panic!("{}: {e}", key.name));
    }
}
