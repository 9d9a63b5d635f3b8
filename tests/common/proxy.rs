//! A TCP proxy whose connections a test can cut at once, to force client disconnects.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

pub struct CutProxy {
    pub addr: SocketAddr,
    cut: broadcast::Sender<()>,
}

impl CutProxy {
    /// Forwards every connection on a fresh local port to `target`.
    pub async fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = broadcast::channel(4);
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut stop = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = stop.recv() => {} // dropped: both sockets close, no goodbye
                    }
                });
            }
        });
        CutProxy { addr, cut }
    }

    /// Severs every connection open now.
    pub fn cut(&self) {
        let _ = self.cut.send(());
    }
}
