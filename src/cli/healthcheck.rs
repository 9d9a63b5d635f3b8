//! `sigcast healthcheck`: asks a running server's admin listener `/healthz` (or `/readyz`)
//! and exits 0 only on 200, for container `HEALTHCHECK`s and scripts (a slim image has
//! no curl).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::settings::SettingsArgs;
use crate::config::Overrides;

/// Ask a running server's admin listener for /healthz (or /readyz with --ready); exit 0
/// only when it answers 200. For container HEALTHCHECKs and scripts.
#[derive(Debug, Args)]
pub struct Healthcheck {
    /// Ask /readyz: upstream connected and subscribed, strategies warm.
    #[arg(long)]
    ready: bool,
    /// Admin listener address (default: admin.listen from the configuration).
    #[arg(long, value_name = "HOST:PORT")]
    admin: Option<SocketAddr>,
    #[command(flatten)]
    settings: SettingsArgs,
}

pub fn run(args: Healthcheck) -> anyhow::Result<ExitCode> {
    let addr = match args.admin {
        Some(addr) => addr,
        None => args.settings.load(Overrides::default())?.admin.listen,
    };
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let (status, body) = super::runtime()?.block_on(ask(target(addr), path))?;
    print!("{body}");
    Ok(match status {
        200 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// How long the whole check may take: connect, ask, read.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Where to ask: an unspecified listen address (`0.0.0.0:9090`) is asked on loopback.
fn target(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, listen.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, listen.port()).into(),
        _ => listen,
    }
}

/// GETs `path` from the admin listener at `addr`; the status code and body.
async fn ask(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tcp.take(64 * 1024).read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(CHECK_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {CHECK_TIMEOUT:?}"))?
        .with_context(|| format!("admin listener {addr}"))?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("admin listener {addr}: not an HTTP response"))?;
    Ok((status, body.to_string()))
}
