//! A server-side TLS connection on rustls' unbuffered API, so an idle session holds no buffer of its own.
//!
//! rustls' buffered connection keeps a 4 KiB read buffer per connection even when nothing is
//! pending. Here TLS bytes are read into a buffer that is freed once every complete record in
//! it is processed; only a partial record is kept between reads, and encrypted output only
//! until the socket takes it. rustls handles every record for the whole session, TLS 1.2 and
//! 1.3 alike: record and plaintext limits, key updates (at most one answer queued, and a flood
//! of them refused), alerts and close_notify. Its secrets never leave it.
//!
//! A little over 500 lines, a quarter of them tests against a real rustls client.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::ServerConfig;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Room made for each read. Clients send little (a handshake flight, a request, pongs); a
/// bigger record arrives over several reads, each adding room.
const READ_SIZE: usize = 4 * 1024;
/// Encrypted bytes a writer may queue before it waits for the socket. Reading waits for the
/// socket too once this much is queued, so a client that sends without reading the answers
/// rustls owes it cannot grow the queue.
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
    /// rustls' connection state, boxed: a session moves its stream around, and the state is
    /// the larger part of it.
    conn: Box<UnbufferedServerConnection>,
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
    /// rustls refused the connection; the alert it owed the client is queued in `outgoing`.
    failed: bool,
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

/// Runs the TLS handshake on `tcp`; the caller bounds it with its handshake timeout. A
/// refused handshake sends rustls' alert before it ends.
pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
    let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    let mut stream = TlsStream {
        tcp,
        conn: Box::new(conn),
        incoming: Vec::new(),
        plaintext: Vec::new(),
        plaintext_at: 0,
        outgoing: Vec::new(),
        outgoing_at: 0,
        eof: false,
        closing: false,
        failed: false,
    };
    loop {
        let stop = stream.process();
        // What rustls answered, an alert included, goes out before a refusal ends the stream.
        std::future::poll_fn(|cx| stream.poll_send(cx)).await?;
        match stop? {
            Stop::Traffic => return Ok(stream),
            Stop::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
            Stop::Handshaking => {}
        }
        let n = std::future::poll_fn(|cx| stream.poll_fill(cx)).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

impl TlsStream {
    /// Bytes sent to the client and not yet taken by it: ciphertext waiting here, plus what
    /// the kernel holds unsent or unacknowledged.
    pub fn unread(&self) -> usize {
        self.outgoing.len() - self.outgoing_at + super::kernel_unsent(&self.tcp)
    }

    /// The TLS version the handshake agreed on.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// Processes the bytes at hand: decrypted data goes to `plaintext`, TLS messages the
    /// protocol wants sent (handshake, alerts, key updates) to `outgoing`. On an error,
    /// the alert rustls owes the client is queued too.
    fn process(&mut self) -> io::Result<Stop> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS connection already refused",
            ));
        }
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut self.incoming);
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    self.incoming.drain(..discard);
                    self.fail();
                    return Err(tls_error(e));
                }
            };
            let mut stop = None;
            match state {
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

    /// After rustls refused the connection: queues the alert it holds for the client, and
    /// drops whatever else the client sent.
    fn fail(&mut self) {
        self.failed = true;
        self.eof = true;
        self.plaintext = Vec::new();
        self.plaintext_at = 0;
        // rustls queued its alert when it refused; the next call hands it out before it looks
        // at any input. Only that call: a further one would read on past the bad record and
        // refuse again. (Earlier messages went out as `process` met them, so the alert is
        // all there is.) The same buffer as before: a message rustls was still joining
        // points into it.
        let UnbufferedStatus { state, .. } = self.conn.process_tls_records(&mut self.incoming);
        if let Ok(ConnectionState::EncodeTlsData(mut message)) = state {
            let _ = encode(&mut message, &mut self.outgoing);
        }
        self.incoming = Vec::new();
    }

    /// Encrypts `data` (or, with `None`, a close_notify) into `outgoing`.
    fn encrypt(&mut self, data: Option<&[u8]>) -> io::Result<()> {
        // Whatever rustls has first (decrypted data, its own messages) is handled by
        // `process`, which stops where encryption may begin.
        match self.process()? {
            Stop::Traffic => {}
            Stop::Handshaking => return Err(io::Error::other("TLS handshake not complete")),
            Stop::Closed => return Err(io::ErrorKind::BrokenPipe.into()),
        }
        let UnbufferedStatus { discard, state } = self.conn.process_tls_records(&mut self.incoming);
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
            // A client that makes rustls answer (key updates) and never reads the answers
            // waits here with the rest of its bytes unread, instead of growing `outgoing`.
            if this.pending_output() >= MAX_PENDING {
                ready!(this.poll_send(cx))?;
            }
            if ready!(this.poll_fill(cx))? == 0 {
                // The socket closed without close_notify: the end of the stream all the same.
                this.eof = true;
                continue;
            }
            let processed = this.process();
            // rustls may have answered something (a key update, an alert): send it if the
            // socket takes it now; otherwise the next write or flush does.
            if this.pending_output() > 0 {
                if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                    return Poll::Ready(Err(processed.err().unwrap_or(e)));
                }
            }
            processed?;
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
            // A session ending after the client vanished, or after rustls refused it (its
            // alert is queued), cannot say goodbye: go on closing.
            if !this.failed {
                let _ = this.encrypt(None);
            }
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

    /// Key updates from the client (which ask for the server's too) in the middle of a
    /// session: rustls answers them, and data keeps flowing both ways.
    #[tokio::test]
    async fn key_updates_both_ways() {
        let (material, config, listener) = served().await;
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = accept(tcp, config).await.unwrap();
            assert_eq!(
                tls.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_3)
            );
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
            if round % 3 == 1 {
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

    /// A handshake rustls refuses (a TLS 1.1-only ClientHello, answered by no shared
    /// version) ends with rustls' alert on the wire, not a silent close.
    #[tokio::test]
    async fn a_refused_handshake_is_answered_with_an_alert() {
        let (_material, config, listener) = served().await;
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            accept(tcp, config).await.map(drop)
        });
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        // Not a ClientHello at all: a handshake record of another type.
        tcp.write_all(&[22, 3, 1, 0, 4, 2, 0, 0, 0]).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        assert!(server.await.unwrap().is_err(), "the handshake failed");
        assert_eq!(answer.first(), Some(&21), "an alert record: {answer:?}");
        assert_eq!(answer.get(5), Some(&2), "a fatal one: {answer:?}");
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
