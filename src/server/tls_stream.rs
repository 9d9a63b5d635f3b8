//! TLS over a client's TCP socket with rustls' unbuffered API, so an idle session holds no
//! buffer of its own: rustls' buffered connection keeps a 4 KiB read buffer per connection
//! even when nothing is pending. Here TLS bytes are read into a buffer that is freed once
//! every complete record in it is processed; only a partial record is kept between reads,
//! and encrypted output only until the socket takes it.
//!
//! Once a TLS 1.3 handshake is done, rustls hands the keys over and [`Records`] protects
//! the records (rustls' connection state, about 3 KB a client, is freed); TLS 1.2 sessions
//! stay with rustls throughout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::ServerConfig;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::records::{Handover, Records};

/// Room made for each read. Clients send little (a handshake flight, a request, pongs); a
/// bigger record arrives over several reads, each adding room.
const READ_SIZE: usize = 4 * 1024;
/// Encrypted bytes a writer may queue before it waits for the socket.
const MAX_PENDING: usize = 256 * 1024;

/// Where processing the bytes at hand stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The handshake needs more bytes from the client.
    Handshaking,
    /// Application data may flow; more bytes from the client give more to read.
    Traffic,
    /// Both sides have sent close_notify.
    Closed,
}

/// A server-side TLS connection; see the module documentation.
pub struct TlsStream {
    tcp: TcpStream,
    protection: Protection,
    /// TLS bytes read and not yet processed (a partial record); unallocated when empty.
    incoming: Vec<u8>,
    /// Decrypted bytes the reader has not taken yet, from `plaintext_at`.
    plaintext: Vec<u8>,
    plaintext_at: usize,
    /// Encrypted bytes the socket has not taken yet, from `outgoing_at`.
    outgoing: Vec<u8>,
    outgoing_at: usize,
    /// The client sent close_notify, or closed the socket: reads end.
    eof: bool,
    /// close_notify is queued: writes end.
    closing: bool,
}

/// Who protects the records.
// The record layer inline: nearly every session is TLS 1.3, and a box would add an
// allocation and its overhead to each; the rare TLS 1.2 session boxes rustls instead.
#[allow(clippy::large_enum_variant)]
enum Protection {
    /// rustls: during the handshake, and for a whole TLS 1.2 session.
    Rustls(Box<UnbufferedServerConnection>),
    /// sigcast's own record layer, after a TLS 1.3 handshake.
    Records(Records),
    /// Only while the keys are handed over; a failed handover leaves it, and ends the session.
    HandingOver,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Appends a TLS message rustls wants sent (handshake, alert, key update) to `outgoing`.
fn encode<Data>(
    message: &mut rustls::unbuffered::EncodeTlsData<'_, Data>,
    outgoing: &mut Vec<u8>,
) -> io::Result<()> {
    let start = outgoing.len();
    let mut room = 512;
    loop {
        outgoing.resize(start + room, 0);
        match message.encode(&mut outgoing[start..]) {
            Ok(n) => {
                outgoing.truncate(start + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(s)) => room = s.required_size,
            Err(e) => {
                outgoing.truncate(start);
                return Err(io::Error::other(e.to_string()));
            }
        }
    }
}

/// Runs the TLS handshake on `tcp`; the caller bounds it with its handshake timeout.
pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
    let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    let mut stream = TlsStream {
        tcp,
        protection: Protection::Rustls(Box::new(conn)),
        incoming: Vec::new(),
        plaintext: Vec::new(),
        plaintext_at: 0,
        outgoing: Vec::new(),
        outgoing_at: 0,
        eof: false,
        closing: false,
    };
    // The key log keeps this handshake's secrets under the client random until the handover
    // takes them; a handshake that fails or times out drops them with this guard.
    let mut logged = Logged(None);
    loop {
        if logged.0.is_none() {
            logged.0 = client_random(&stream.incoming);
        }
        let stop = stream.process()?;
        std::future::poll_fn(|cx| stream.poll_send(cx)).await?;
        match stop {
            Stop::Traffic => {
                stream.take_over(logged.0.take())?;
                return Ok(stream);
            }
            Stop::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
            Stop::Handshaking => {}
        }
        let n = std::future::poll_fn(|cx| stream.poll_fill(cx)).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// The client random of the ClientHello at the front of `incoming`, once its first 43 bytes
/// are there: record header (5), handshake header (4), legacy version (2), random (32).
fn client_random(incoming: &[u8]) -> Option<[u8; 32]> {
    match incoming {
        [22, _, _, _, _, 1, _, _, _, _, _, random @ ..] => random.get(..32)?.try_into().ok(),
        _ => None,
    }
}

/// A handshake's place in the key log, forgotten unless the handover took it.
struct Logged(Option<[u8; 32]>);

impl Drop for Logged {
    fn drop(&mut self) {
        if let Some(random) = self.0 {
            Handover::forget(&random);
        }
    }
}

impl TlsStream {
    /// After a TLS 1.3 handshake: takes the keys from rustls and frees its connection. Without
    /// logged secrets (a TLS 1.2 session) rustls goes on protecting the records.
    fn take_over(&mut self, client_random: Option<[u8; 32]>) -> io::Result<()> {
        let Protection::Rustls(conn) = &self.protection else {
            return Ok(());
        };
        let Some(random) = client_random else {
            return Ok(());
        };
        let Some(secrets) = Handover::take(&random) else {
            return Ok(());
        };
        if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
            return Ok(());
        }
        let Protection::Rustls(conn) =
            std::mem::replace(&mut self.protection, Protection::HandingOver)
        else {
            unreachable!("checked above");
        };
        // rustls' kernel connection would keep its key schedule (about 800 bytes); the
        // record layer derives key updates from the logged secrets instead.
        let (extracted, _schedule) = conn.dangerous_into_kernel_connection().map_err(tls_error)?;
        self.protection = Protection::Records(Records::new(extracted, secrets)?);
        // Records the client sent right behind its Finished, if rustls left any.
        self.process().map(drop)
    }

    /// Bytes sent to the client and not yet taken by it: ciphertext waiting here, plus what
    /// the kernel holds unsent or unacknowledged.
    pub fn unread(&self) -> usize {
        self.outgoing.len() - self.outgoing_at + super::kernel_unsent(&self.tcp)
    }

    /// Frees the expanded sending key of a quiet session; the next write rebuilds it.
    pub fn release_keys(&mut self) {
        if let Protection::Records(records) = &mut self.protection {
            records.release();
        }
    }

    /// Processes the bytes at hand: decrypted data goes to `plaintext`, TLS messages the
    /// protocol wants sent (handshake, alerts, key updates) to `outgoing`.
    fn process(&mut self) -> io::Result<Stop> {
        let conn = match &mut self.protection {
            Protection::Rustls(conn) => conn,
            Protection::Records(records) => {
                let opened =
                    records.open(&mut self.incoming, &mut self.plaintext, &mut self.outgoing)?;
                self.incoming.drain(..opened.consumed);
                if self.incoming.is_empty() && self.incoming.capacity() > 0 {
                    self.incoming = Vec::new();
                }
                self.eof |= opened.closed;
                return Ok(Stop::Traffic);
            }
            Protection::HandingOver => return Err(io::Error::other("TLS handover failed")),
        };
        loop {
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut self.incoming);
            let mut stop = None;
            match state.map_err(tls_error)? {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record.map_err(tls_error)?;
                        self.plaintext.extend_from_slice(record.payload);
                    }
                }
                ConnectionState::ReadEarlyData(mut records) => {
                    // sigcast offers no 0-RTT; nothing arrives here, and nothing is kept.
                    while let Some(record) = records.next_record() {
                        record.map_err(tls_error)?;
                    }
                }
                ConnectionState::EncodeTlsData(mut message) => {
                    encode(&mut message, &mut self.outgoing)?;
                }
                // What was encoded goes out with the next send.
                ConnectionState::TransmitTlsData(done) => done.done(),
                ConnectionState::BlockedHandshake => stop = Some(Stop::Handshaking),
                ConnectionState::WriteTraffic(_) => stop = Some(Stop::Traffic),
                ConnectionState::PeerClosed => self.eof = true,
                ConnectionState::Closed => {
                    self.eof = true;
                    stop = Some(Stop::Closed);
                }
                _ => return Err(io::Error::other("unexpected TLS state")),
            }
            self.incoming.drain(..discard);
            if let Some(stop) = stop {
                if self.incoming.is_empty() && self.incoming.capacity() > 0 {
                    self.incoming = Vec::new();
                }
                return Ok(stop);
            }
        }
    }

    /// Encrypts `data` (or, with `None`, a close_notify) into `outgoing`.
    fn encrypt(&mut self, data: Option<&[u8]>) -> io::Result<()> {
        if let Protection::Records(records) = &mut self.protection {
            return match data {
                Some(d) => records.seal(d, &mut self.outgoing),
                None => records.seal_close_notify(&mut self.outgoing),
            };
        }
        // Whatever rustls has first (decrypted data, its own messages) is handled by
        // `process`, which stops where encryption may begin.
        match self.process()? {
            Stop::Traffic => {}
            Stop::Handshaking => return Err(io::Error::other("TLS handshake not complete")),
            Stop::Closed => return Err(io::ErrorKind::BrokenPipe.into()),
        }
        let Protection::Rustls(conn) = &mut self.protection else {
            return Err(io::Error::other("TLS handover failed"));
        };
        let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut self.incoming);
        let ConnectionState::WriteTraffic(mut traffic) = state.map_err(tls_error)? else {
            return Err(io::Error::other("unexpected TLS state"));
        };
        let start = self.outgoing.len();
        let mut room = data.map_or(64, |d| d.len() + d.len() / 64 + 64);
        let written = loop {
            self.outgoing.resize(start + room, 0);
            let out = &mut self.outgoing[start..];
            let written = match data {
                Some(d) => traffic.encrypt(d, out),
                None => traffic.queue_close_notify(out),
            };
            match written {
                Ok(n) => break Ok(n),
                Err(EncryptError::InsufficientSize(s)) => room = s.required_size,
                Err(e) => break Err(io::Error::other(e.to_string())),
            }
        };
        self.incoming.drain(..discard);
        self.outgoing
            .truncate(start + *written.as_ref().unwrap_or(&0));
        written.map(drop)
    }

    /// Reads what the socket has into `incoming`; the count (0: the client closed). Waits
    /// for readiness first, so a session waiting on a quiet client holds no buffer.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_read_ready(cx))?;
            self.incoming.reserve(READ_SIZE);
            match self.tcp.try_read_buf(&mut self.incoming) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.incoming.is_empty() {
                        self.incoming = Vec::new();
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Encrypts `data` for sending: as few TLS records as it fits in, queued behind whatever
    /// is already queued; [`poll_send`](Self::poll_send) sends it.
    pub fn queue(&mut self, data: &[u8]) -> io::Result<()> {
        if self.closing {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.encrypt(Some(data))
    }

    /// Writes `outgoing` to the socket until it is empty or the socket is full.
    pub fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.outgoing_at < self.outgoing.len() {
            let n =
                ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing[self.outgoing_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing_at += n;
        }
        // Freed, not kept for the next write: an idle session holds no buffer.
        self.outgoing = Vec::new();
        self.outgoing_at = 0;
        Poll::Ready(Ok(()))
    }

    fn pending_output(&self) -> usize {
        self.outgoing.len() - self.outgoing_at
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plaintext_at < this.plaintext.len() {
                let n = (this.plaintext.len() - this.plaintext_at).min(buf.remaining());
                buf.put_slice(&this.plaintext[this.plaintext_at..this.plaintext_at + n]);
                this.plaintext_at += n;
                if this.plaintext_at == this.plaintext.len() {
                    this.plaintext_at = 0;
                    this.plaintext = Vec::new();
                }
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if ready!(this.poll_fill(cx))? == 0 {
                // The socket closed without close_notify: the end of the stream all the same.
                this.eof = true;
                continue;
            }
            this.process()?;
            // rustls may have answered something (a key update): send it if the socket
            // takes it now; otherwise the next write or flush does.
            if this.pending_output() > 0 {
                if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if this.pending_output() >= MAX_PENDING {
            ready!(this.poll_send(cx))?;
        }
        this.encrypt(Some(data))?;
        // Send what the socket takes now; the rest goes with the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            // A session ending after the client vanished cannot say goodbye: go on closing.
            let _ = this.encrypt(None);
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Fresh development material, the server config made from it, and a listener.
    async fn served() -> (
        crate::devcert::DevCert,
        Arc<ServerConfig>,
        tokio::net::TcpListener,
    ) {
        let material = crate::devcert::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &material.cert_pem).unwrap();
        std::fs::write(&key, &material.key_pem).unwrap();
        let config = crate::tls::server_config(Some(&cert), Some(&key)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        (material, config, listener)
    }

    /// A real rustls client (the buffered one, as clients use) against this stream: the
    /// handshake, data both ways in many sizes, a close_notify at the end.
    #[tokio::test]
    async fn talks_to_a_real_client_both_ways() {
        let (material, config, listener) = served().await;
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = accept(tcp, config).await.unwrap();
            // Echo until the client says bye.
            let mut buf = vec![0u8; 70_000];
            let mut total = 0;
            loop {
                let n = tls.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                total += n;
                tls.write_all(&buf[..n]).await.unwrap();
                tls.flush().await.unwrap();
            }
            tls.shutdown().await.unwrap();
            assert!(tls.incoming.capacity() == 0, "nothing held once idle");
            total
        });

        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = client_for(&material.cert_pem)
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let mut sent = 0;
        for size in [1, 100, 5_000, 16_384, 16_385, 65_000] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            tls.write_all(&data).await.unwrap();
            let mut back = vec![0u8; size];
            tls.read_exact(&mut back).await.unwrap();
            assert_eq!(back, data, "{size} bytes echoed");
            sent += size;
        }
        tls.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        assert_eq!(server.await.unwrap(), sent);
    }

    /// Key updates both ways after the handover to sigcast's record layer: the client's
    /// (which asks for the server's too), and the server's own when its sending key has
    /// sealed its share of records.
    #[tokio::test]
    async fn key_updates_both_ways() {
        let (material, config, listener) = served().await;
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = accept(tcp, config).await.unwrap();
            let Protection::Records(records) = &mut tls.protection else {
                panic!("a TLS 1.3 session is handed over to the record layer");
            };
            // Three records under the first key, then the server moves on by itself.
            records.tx_left = 3;
            let mut buf = vec![0u8; 1024];
            loop {
                let n = tls.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                tls.write_all(&buf[..n]).await.unwrap();
                tls.flush().await.unwrap();
            }
            tls.shutdown().await.unwrap();
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = client_for(&material.cert_pem)
            .connect("localhost".try_into().unwrap(), tcp)
            .await
            .unwrap();
        for round in 0..10u8 {
            if round == 4 {
                tls.get_mut().1.refresh_traffic_keys().unwrap();
            }
            let data = [round; 100];
            tls.write_all(&data).await.unwrap();
            let mut back = [0u8; 100];
            tls.read_exact(&mut back).await.unwrap();
            assert_eq!(back, data, "round {round} echoed");
        }
        tls.shutdown().await.unwrap();
        server.await.unwrap();
    }

    /// A client that vanishes mid-handshake, after the server has logged the session's
    /// secrets: they are dropped with the failed handshake; a finished one takes its own.
    #[tokio::test]
    async fn secrets_of_failed_and_finished_handshakes_are_not_kept() {
        let (material, config, listener) = served().await;
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            accept(tcp, config.clone()).await.map(drop)
        });
        // The ClientHello by hand, to know its random; then the server's flight, then gone.
        let mut client = rustls::ClientConnection::new(
            client_config(&material.cert_pem),
            "localhost".try_into().unwrap(),
        )
        .unwrap();
        let mut hello = Vec::new();
        client.write_tls(&mut hello).unwrap();
        let random: [u8; 32] = client_random(&hello).expect("a ClientHello");
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&hello).await.unwrap();
        let mut flight = [0u8; 4096];
        let n = tcp.read(&mut flight).await.unwrap();
        assert!(n > 0, "the server answered");
        assert!(Handover::holds(&random), "the server logged the secrets");
        drop(tcp);
        assert!(server.await.unwrap().is_err(), "the handshake failed");
        assert!(!Handover::holds(&random), "and its secrets went with it");
    }

    fn client_config(cert_pem: &str) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(client)
    }

    fn client_for(cert_pem: &str) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(client_config(cert_pem))
    }
}
