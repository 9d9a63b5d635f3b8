//! A TLS 1.3 client that handshakes with rustls, then writes records of its own making: the
//! attacker of the adversarial TLS suite (fragmented hellos, key update floods, oversized,
//! tampered and odd records).
//!
//! The handshake is rustls' (TLS 1.3, AES-128-GCM-SHA256 only, so the record keys are known
//! from the key log); after it the client seals and opens records itself, following key
//! updates either way, so it can say anything a broken or malicious peer would.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use rustls::ClientConnection;
use rustls::pki_types::pem::PemObject;

/// TLS content types.
pub const ALERT: u8 = 21;
pub const HANDSHAKE: u8 = 22;
pub const APPLICATION_DATA: u8 = 23;

/// What the server sent, record by record, once opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    Data(Vec<u8>),
    /// An alert: level and description (0 is close_notify).
    Alert(u8, u8),
    /// A handshake message after the handshake (session ticket, key update).
    Handshake(u8),
}

/// The traffic secrets the key log hands out, by label.
#[derive(Debug, Default)]
struct Secrets(Mutex<HashMap<String, Vec<u8>>>);

impl rustls::KeyLog for Secrets {
    fn will_log(&self, _label: &str) -> bool {
        true
    }

    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .insert(label.to_string(), secret.to_vec());
    }
}

/// HKDF-Expand-Label(secret, label, "", len) with SHA-256 (RFC 8446 7.1).
fn expand_label(secret: &[u8], label: &[u8], len: usize) -> Vec<u8> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, secret);
    let length = (len as u16).to_be_bytes();
    let label_len = [(b"tls13 ".len() + label.len()) as u8];
    let info: [&[u8]; 5] = [&length, &label_len, b"tls13 ", label, &[0]];
    let mut out = vec![0u8; len];
    prk.expand(&info, Len(len)).unwrap().fill(&mut out).unwrap();
    out
}

/// One direction's record protection: the traffic secret, its key and IV, the next seq.
struct Direction {
    secret: Vec<u8>,
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl Direction {
    fn new(secret: Vec<u8>, seq: u64) -> Self {
        let key = expand_label(&secret, b"key", 16);
        let iv: [u8; 12] = expand_label(&secret, b"iv", 12).try_into().unwrap();
        Direction {
            key: LessSafeKey::new(UnboundKey::new(&aead::AES_128_GCM, &key).unwrap()),
            iv,
            secret,
            seq,
        }
    }

    /// The next generation (RFC 8446 7.2).
    fn update(&mut self) {
        *self = Direction::new(expand_label(&self.secret, b"traffic upd", 32), 0);
    }

    fn nonce(&mut self) -> Nonce {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq += 1;
        Nonce::assume_unique_for_key(nonce)
    }
}

/// A TLS 1.3 connection after rustls' handshake, with records of the test's own making.
pub struct Hostile {
    pub tcp: TcpStream,
    tx: Direction,
    rx: Direction,
    /// Bytes from the server not yet opened.
    inbox: Vec<u8>,
    /// Application data opened and not yet read.
    plain: Vec<u8>,
}

/// The client config: TLS 1.3 with AES-128-GCM-SHA256 only, trusting `ca`, logging keys.
fn config(ca: &Path, secrets: Arc<Secrets>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256];
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.enable_secret_extraction = true;
    config.key_log = secrets;
    Arc::new(config)
}

/// Splits the TLS records in `flight` so that no record carries more than `size` bytes.
pub fn fragment(flight: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = flight;
    while rest.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let (record, tail) = rest.split_at(5 + len);
        for chunk in record[5..].chunks(size) {
            out.extend_from_slice(&record[..3]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        rest = tail;
    }
    out
}

impl Hostile {
    /// Connects and handshakes; the first flight (the ClientHello) goes out cut into records
    /// of `hello_fragment` bytes when given.
    pub fn connect(addr: SocketAddr, ca: &Path, hello_fragment: Option<usize>) -> io::Result<Self> {
        let secrets = Arc::new(Secrets::default());
        let mut conn =
            ClientConnection::new(config(ca, secrets.clone()), "localhost".try_into().unwrap())
                .map_err(io::Error::other)?;
        let mut tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_nodelay(true)?;
        let mut first = true;
        while conn.is_handshaking() {
            while conn.wants_write() {
                let mut flight = Vec::new();
                conn.write_tls(&mut flight)?;
                if first && let Some(size) = hello_fragment {
                    flight = fragment(&flight, size);
                }
                first = false;
                tcp.write_all(&flight)?;
            }
            if !conn.is_handshaking() {
                break;
            }
            if conn.read_tls(&mut tcp)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            conn.process_new_packets().map_err(io::Error::other)?;
        }
        while conn.wants_write() {
            conn.write_tls(&mut tcp)?;
        }
        let secrets = secrets.0.lock().unwrap().clone();
        let extracted = conn.dangerous_extract_secrets().map_err(io::Error::other)?;
        Ok(Hostile {
            tcp,
            tx: Direction::new(secrets["CLIENT_TRAFFIC_SECRET_0"].clone(), extracted.tx.0),
            rx: Direction::new(secrets["SERVER_TRAFFIC_SECRET_0"].clone(), extracted.rx.0),
            inbox: Vec::new(),
            plain: Vec::new(),
        })
    }

    /// One record: `inner` (content, then its type byte, then `padding` zeros) sealed under
    /// the current key, with the header's length as sealed.
    pub fn seal(&mut self, typ: u8, content: &[u8], padding: usize) -> Vec<u8> {
        let mut inner = content.to_vec();
        inner.push(typ);
        inner.resize(inner.len() + padding, 0);
        let len = (inner.len() + 16) as u16;
        let header = [APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8];
        let nonce = self.tx.nonce();
        self.tx
            .key
            .seal_in_place_append_tag(nonce, Aad::from(header), &mut inner)
            .unwrap();
        let mut record = header.to_vec();
        record.extend_from_slice(&inner);
        record
    }

    /// A KeyUpdate message; `requested` asks the server to update its own key too.
    pub fn key_update_message(requested: bool) -> [u8; 5] {
        [24, 0, 0, 1, u8::from(requested)]
    }

    /// One record holding one KeyUpdate; this side's key moves on after it.
    pub fn key_update(&mut self, requested: bool) -> Vec<u8> {
        let record = self.seal(HANDSHAKE, &Self::key_update_message(requested), 0);
        self.tx.update();
        record
    }

    /// Moves this side's sending key on without telling the server (after sealing several
    /// KeyUpdates in one record by hand, say).
    pub fn advance_tx(&mut self) {
        self.tx.update();
    }

    /// Application data, sealed and sent.
    pub fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let mut wire = Vec::new();
        for chunk in data.chunks(16_384) {
            wire.extend(self.seal(APPLICATION_DATA, chunk, 0));
        }
        self.tcp.write_all(&wire)
    }

    /// Bytes on the wire as given.
    pub fn send_raw(&mut self, wire: &[u8]) -> io::Result<()> {
        self.tcp.write_all(wire)
    }

    /// The next record from the server, opened; `None` at the end of the stream. Follows the
    /// server's key updates.
    pub fn receive(&mut self) -> io::Result<Option<Heard>> {
        loop {
            if self.inbox.len() >= 5 {
                let len = usize::from(u16::from_be_bytes([self.inbox[3], self.inbox[4]]));
                if self.inbox.len() >= 5 + len {
                    let record: Vec<u8> = self.inbox.drain(..5 + len).collect();
                    return self.open(&record).map(Some);
                }
            }
            let mut buf = [0u8; 8192];
            match self.tcp.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => self.inbox.extend_from_slice(&buf[..n]),
                Err(e) => return Err(e),
            }
        }
    }

    fn open(&mut self, record: &[u8]) -> io::Result<Heard> {
        if record[0] != APPLICATION_DATA {
            // Before encryption only an alert could come; after it nothing else may.
            return Ok(Heard::Alert(record[5], record.get(6).copied().unwrap_or(0)));
        }
        let header: [u8; 5] = record[..5].try_into().unwrap();
        let mut body = record[5..].to_vec();
        let nonce = self.rx.nonce();
        let plain = self
            .rx
            .key
            .open_in_place(nonce, Aad::from(header), &mut body)
            .map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "server record did not open")
            })?;
        let end = plain.iter().rposition(|b| *b != 0).unwrap_or(0);
        let (content, typ) = (&plain[..end], plain[end]);
        Ok(match typ {
            ALERT => Heard::Alert(content[0], content[1]),
            HANDSHAKE => {
                if content.first() == Some(&24) {
                    self.rx.update();
                }
                Heard::Handshake(content[0])
            }
            _ => Heard::Data(content.to_vec()),
        })
    }

    /// Application data until `want` bytes came, skipping handshake messages; an alert or
    /// the end of the stream first is an error.
    pub fn receive_data(&mut self, want: usize) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        while data.len() < want {
            match self.receive()? {
                Some(Heard::Data(d)) => data.extend(d),
                Some(Heard::Handshake(_)) => {}
                Some(Heard::Alert(level, desc)) => {
                    return Err(io::Error::other(format!("alert {level}/{desc}")));
                }
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
        Ok(data)
    }

    /// What the server sends until it closes: the records opened, in order.
    pub fn until_closed(&mut self) -> Vec<Heard> {
        let mut heard = Vec::new();
        loop {
            match self.receive() {
                Ok(Some(h)) => heard.push(h),
                Ok(None) => break,
                Err(e) => {
                    eprintln!("until_closed: {e}");
                    break;
                }
            }
        }
        heard
    }
}

/// The session's application data: what tungstenite reads and writes over this client.
impl Read for Hostile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.plain.is_empty() {
            match self.receive()? {
                Some(Heard::Data(d)) => self.plain = d,
                Some(Heard::Handshake(_)) => {}
                Some(Heard::Alert(level, desc)) => {
                    return Err(io::Error::other(format!("alert {level}/{desc}")));
                }
                None => return Ok(0),
            }
        }
        let n = self.plain.len().min(buf.len());
        buf[..n].copy_from_slice(&self.plain[..n]);
        self.plain.drain(..n);
        Ok(n)
    }
}

impl Write for Hostile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}
