//! sigcast's WebSocket I/O as an echo server, for the Autobahn conformance cases.
//!
//! `kosoku -m fuzzingclient 127.0.0.1:PORT` drives it (tests/conformance.rs does, and
//! `scripts/test` runs that). Every frame is read, classified, answered and closed by the
//! code sessions run (`sigcast::server::wire`), with tungstenite configured from the same
//! `[server]` settings; only the transport (plain TCP: the Autobahn client speaks no TLS),
//! the missing token check and the echo itself are this file's.
//!
//! ```text
//! cargo run --example echo -- [ADDR] [--max-message-size BYTES]
//! ```
//! It prints `listening on ADDR` once bound (port 0 picks a free port).

use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use sigcast::config::ServerSettings;
use sigcast::server::wire::{self, Inbound};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:9001".to_string();
    // sigcast's own defaults, but for the message limit: the Autobahn cases send up to
    // 16 MiB, where a session refuses anything over `server.max_message_size` with 1009.
    let mut settings = ServerSettings {
        max_message_size: 64 << 20,
        ..ServerSettings::default()
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--max-message-size" => {
                let n = args.next().context("--max-message-size needs a number")?;
                settings.max_message_size = n.parse().context("--max-message-size")?;
            }
            _ => addr = arg,
        }
    }
    let listener = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    println!("listening on {}", listener.local_addr()?);
    let settings = std::sync::Arc::new(settings);
    loop {
        let (socket, _) = listener.accept().await?;
        let settings = settings.clone();
        tokio::spawn(async move {
            if let Err(e) = echo(socket, &settings).await {
                eprintln!("echo session ended: {e}");
            }
        });
    }
}

/// One connection: the WebSocket handshake within the handshake timeout, then every text
/// and binary message back until either side closes.
async fn echo(socket: TcpStream, settings: &ServerSettings) -> anyhow::Result<()> {
    let config = wire::ws_config(settings);
    let accept = tokio_tungstenite::accept_async_with_config(socket, Some(config));
    let mut ws = tokio::time::timeout(settings.handshake_timeout, accept)
        .await
        .context("handshake timed out")??;
    let write_timeout: Duration = settings.write_timeout;
    loop {
        let reply = match Inbound::classify(ws.next().await)? {
            Inbound::Text(text) => Message::Text(text),
            Inbound::Binary(data) => Message::Binary(data),
            Inbound::Control => continue,
            Inbound::Closed(_) => {
                wire::reply_close(&mut ws).await;
                return Ok(());
            }
            Inbound::Refused(code, reason) => {
                wire::close(&mut ws, code, &reason).await;
                return Ok(());
            }
        };
        // An echo has no backlog policy and no signals to fall behind on.
        let mut waited = false;
        let reply = std::iter::once(reply);
        wire::write_all(&mut ws, reply, write_timeout, &mut waited, || None).await?;
    }
}
