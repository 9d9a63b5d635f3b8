//! The node's listening sockets: the client port and the operators' admin port.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;

/// Pending connections the kernel queues for the accept loop (capped by `net.core.somaxconn`).
/// The usual 128 overflows under a burst of reconnecting clients, and every dropped SYN costs
/// its client a one-second retransmit.
const ACCEPT_BACKLOG: u32 = 4096;

/// The sockets a node serves on, bound before anything else opens.
pub struct Listeners {
    /// TLS WebSocket clients, the dashboard and the publish API (`server.listen`).
    pub clients: TcpListener,
    /// `/metrics`, `/healthz`, `/readyz` in plain HTTP (`admin.listen`), when enabled.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds `server.listen` and, when enabled, `admin.listen`, naming the key that fails.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let clients = bind(config.server.listen).await?;
        let admin = match config.admin.enabled {
            true => Some(bind_admin(config.admin.listen).await?),
            false => None,
        };
        Ok(Listeners { clients, admin })
    }
}

/// Binds the client listener with a deep accept backlog, naming the key when it fails.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listen = || {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(ACCEPT_BACKLOG)
    };
    listen().with_context(|| {
        format!("server.listen: cannot listen on {addr} (another process has it? pass --listen HOST:PORT or stop the other one)")
    })
}

/// Binds the admin listener, naming the key when it fails.
async fn bind_admin(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "admin.listen: cannot listen on {addr} (set another address, or admin.enabled = false)"
        )
    })
}
