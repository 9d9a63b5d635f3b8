//! `sigcast serve` as its own process, for the tests that measure its memory or kill it:
//! the material and settings of [`super::Material`], the synthetic market, the client and
//! admin ports read from its startup log.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sigcast::auth::{KeyRing, Scope};
use sigcast::config::Config;

use super::Material;

/// A running `sigcast serve` process; killed when dropped.
pub struct Served {
    child: Child,
    pub material: Material,
    pub config: Config,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: PathBuf,
    ring: KeyRing,
}

impl Served {
    /// Starts a server with fresh material and `extra` settings.
    pub fn start(extra: &[(&str, &str)]) -> Served {
        Self::start_with(Material::new(), extra)
    }

    /// Starts a server on `material` (its data directory included: a restart after a kill).
    pub fn start_with(material: Material, extra: &[(&str, &str)]) -> Served {
        let mut settings = vec![("source.kind", "synthetic")];
        settings.extend_from_slice(extra);
        let config = material.config(&settings);
        let file = material.path("sigcast.toml");
        std::fs::write(&file, config.to_toml()).unwrap();
        let log = material.path(&format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = super::sigcast_command()
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .current_dir(material.dir.path())
            .env_remove("SIGCAST_CONFIG")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let ring = KeyRing::from_settings(&config.auth).unwrap();
        let mut served = Served {
            child,
            material,
            config,
            addr: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            log,
            ring,
        };
        served.addr = served.logged("listen");
        served.admin = served.logged("admin");
        served
    }

    /// The address the startup log names under `field`.
    fn logged(&mut self, field: &str) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.log_text();
            // Log lines are text here (`field=address`), JSON where the config says so.
            let key = format!(" {field}=");
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<Value>(line)
                    && let Some(a) = v["fields"][field].as_str()
                {
                    return a.parse().unwrap();
                }
                if let Some((_, rest)) = line.split_once(&key)
                    && let Some(a) = rest.split_whitespace().next()
                {
                    return a.parse().unwrap();
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sigcast serve exited with {status}:\n{text}");
            }
            assert!(Instant::now() < deadline, "no {field} in the log:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The certificate clients trust.
    pub fn ca(&self) -> PathBuf {
        self.material.path("cert.pem")
    }

    pub fn token(&self, sub: &str) -> String {
        self.token_scoped(sub, &Scope::default())
    }

    pub fn token_scoped(&self, sub: &str, scope: &Scope) -> String {
        self.ring
            .issue_scoped(sub, Duration::from_secs(600), None, scope)
            .unwrap()
    }

    /// A WebSocket session with `token`.
    pub async fn connect(&self, token: &str) -> super::Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let tls = super::tls_connect(self.addr, &self.ca()).await;
        let mut request = format!("wss://localhost:{}/", self.addr.port())
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, response) = tokio_tungstenite::client_async(request, tls).await.unwrap();
        assert_eq!(response.status(), 101);
        ws
    }

    /// `GET /metrics` from the admin listener.
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let Ok(mut tcp) = std::net::TcpStream::connect(self.admin) else {
            return String::new();
        };
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = tcp.read_to_string(&mut out);
        out
    }

    /// Kills the process with SIGKILL and waits for it; returns the material for a restart.
    pub fn kill(mut self) -> Material {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.material, Material::new())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
