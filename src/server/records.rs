//! TLS 1.3 records after the handshake. rustls negotiates the keys and hands them over
//! through its kernel API (the one made for kTLS); ring seals and opens each record, as
//! rustls' own ring provider does. A session then keeps about 250 bytes of keys and secrets
//! instead of rustls' connection (about 3 KB), and holds ring's expanded key (about 560
//! bytes) only while it is sending: [`Records::release`] drops it when the session goes
//! quiet, and the receiving key is expanded for each read, since clients send little.
//!
//! Record protection as RFC 8446 5.2 has it: the nonce is the write IV XOR the record's
//! sequence number, the additional data is the record header, and the plaintext carries its
//! real content type in its last non-zero byte. Key updates (RFC 8446 4.6.3, 7.2) derive the
//! next traffic secret from the current one; rustls' kernel connection could do that too,
//! but keeping it costs 800 bytes a session, so the two application traffic secrets are
//! taken from rustls' key log ([`Handover`]) as the handshake makes them.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, MutexGuard};

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use rustls::ConnectionTrafficSecrets;

/// A record header: content type, legacy version, length.
const HEADER: usize = 5;
/// The largest plaintext in one record (RFC 8446 5.1).
pub const MAX_PLAINTEXT: usize = 16 * 1024;
/// The AEAD tag after each record's ciphertext.
const TAG: usize = 16;
/// The largest record body a peer may send: plaintext, content type and padding, tag.
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;

const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const KEY_UPDATE: u8 = 24;
const CLOSE_NOTIFY: u8 = 0;

/// Records sent under one key before sigcast moves to the next (RFC 8446 5.5 puts AES-GCM's
/// limit at 2^24.5 records; rustls refreshes at 2^24, this is below either).
pub const KEY_LIFETIME: u64 = 1 << 23;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {what}"))
}

/// The largest traffic secret: SHA-384's output.
const MAX_SECRET: usize = 48;

/// An application traffic secret, as the key log gives it (RFC 8446 7.1).
#[derive(Clone)]
pub struct Secret {
    bytes: [u8; MAX_SECRET],
    len: u8,
}

impl Secret {
    fn of(bytes: &[u8]) -> Option<Self> {
        let mut secret = Self {
            bytes: [0; MAX_SECRET],
            len: u8::try_from(bytes.len()).ok()?,
        };
        secret.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(secret)
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The suite's hash, known by its output length (TLS 1.3 suites use SHA-256 or SHA-384).
    fn hkdf(&self) -> io::Result<hkdf::Algorithm> {
        match self.len {
            32 => Ok(hkdf::HKDF_SHA256),
            48 => Ok(hkdf::HKDF_SHA384),
            _ => Err(invalid("unexpected traffic secret length")),
        }
    }

    /// HKDF-Expand-Label(secret, label, "", out.len()) (RFC 8446 7.1).
    fn expand_label(&self, label: &[u8], out: &mut [u8]) -> io::Result<()> {
        struct Len(usize);
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let prk = hkdf::Prk::new_less_safe(self.hkdf()?, self.as_slice());
        let length = (out.len() as u16).to_be_bytes();
        let label_len = [(b"tls13 ".len() + label.len()) as u8];
        let info: [&[u8]; 5] = [&length, &label_len, b"tls13 ", label, &[0]];
        prk.expand(&info, Len(out.len()))
            .and_then(|okm| okm.fill(out))
            .map_err(|_| invalid("key derivation failed"))
    }

    /// The next generation's secret (RFC 8446 7.2).
    fn next(&self) -> io::Result<Self> {
        let mut next = self.clone();
        let len = usize::from(self.len);
        self.expand_label(b"traffic upd", &mut next.bytes[..len])?;
        Ok(next)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.bytes);
    }
}

/// Overwrites key material before its memory is freed.
fn wipe(bytes: &mut [u8]) {
    for b in bytes {
        // SAFETY: a plain byte written through a valid `&mut u8`.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}

/// The key log sigcast gives rustls: it keeps each handshake's two application traffic
/// secrets, by client random, until the session takes them ([`Handover::take`]) or its
/// handshake fails ([`Handover::forget`]). Nothing is written anywhere.
#[derive(Debug, Default)]
pub struct Handover;

/// Secrets logged and not yet taken: one entry per TLS 1.3 handshake in flight.
static LOGGED: Mutex<Option<HashMap<[u8; 32], Logged>>> = Mutex::new(None);

#[derive(Default)]
struct Logged {
    client: Option<Secret>,
    server: Option<Secret>,
}

fn logged() -> MutexGuard<'static, Option<HashMap<[u8; 32], Logged>>> {
    // Every change is one insert or remove: a panic elsewhere leaves nothing half-done.
    LOGGED.lock().unwrap_or_else(|e| e.into_inner())
}

impl rustls::KeyLog for Handover {
    fn will_log(&self, label: &str) -> bool {
        matches!(label, "CLIENT_TRAFFIC_SECRET_0" | "SERVER_TRAFFIC_SECRET_0")
    }

    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let (Ok(random), Some(secret)) = (<[u8; 32]>::try_from(client_random), Secret::of(secret))
        else {
            return;
        };
        let mut map = logged();
        let entry = map
            .get_or_insert_with(HashMap::new)
            .entry(random)
            .or_default();
        match label {
            "CLIENT_TRAFFIC_SECRET_0" => entry.client = Some(secret),
            "SERVER_TRAFFIC_SECRET_0" => entry.server = Some(secret),
            _ => {}
        }
    }
}

impl Handover {
    /// The client's and the server's application traffic secrets of a finished handshake.
    pub fn take(client_random: &[u8; 32]) -> Option<(Secret, Secret)> {
        let entry = logged().as_mut()?.remove(client_random)?;
        Some((entry.client?, entry.server?))
    }

    /// Drops what a failed handshake logged.
    pub fn forget(client_random: &[u8; 32]) {
        if let Some(map) = logged().as_mut() {
            map.remove(client_random);
        }
    }

    /// Whether secrets logged under `client_random` wait to be taken.
    #[cfg(test)]
    pub fn holds(client_random: &[u8; 32]) -> bool {
        logged()
            .as_ref()
            .is_some_and(|map| map.contains_key(client_random))
    }
}

/// One direction's traffic keys and record counter.
struct Keys {
    algorithm: &'static aead::Algorithm,
    key: [u8; 32],
    iv: [u8; aead::NONCE_LEN],
    seq: u64,
    /// The traffic secret the key and IV come from, for the next key update.
    secret: Secret,
    /// ring's expanded key, built when needed (kept only by the sending side while busy).
    expanded: Option<Box<LessSafeKey>>,
}

impl Keys {
    fn new(seq: u64, secrets: ConnectionTrafficSecrets, secret: Secret) -> io::Result<Self> {
        let (algorithm, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(invalid("cipher suite without a record layer here")),
        };
        let (key, iv) = (key.as_ref(), iv.as_ref());
        if key.len() != algorithm.key_len() || iv.len() != aead::NONCE_LEN {
            return Err(invalid("unexpected key length"));
        }
        let mut keys = Self {
            algorithm,
            key: [0; 32],
            iv: [0; aead::NONCE_LEN],
            seq,
            secret,
            expanded: None,
        };
        keys.key[..key.len()].copy_from_slice(key);
        keys.iv.copy_from_slice(iv);
        // The secret must be the one these keys come from, or key updates would go wrong.
        let mut check = [0u8; aead::NONCE_LEN];
        keys.secret.expand_label(b"iv", &mut check)?;
        if check != keys.iv {
            return Err(invalid("traffic secret does not match the keys"));
        }
        Ok(keys)
    }

    /// This direction's next keys (RFC 8446 7.2); the record counter starts again at 0.
    fn next(&self) -> io::Result<Self> {
        Self::derived(self.algorithm, self.secret.next()?)
    }

    /// The key and IV of a traffic secret (RFC 8446 7.3), from record 0.
    fn derived(algorithm: &'static aead::Algorithm, secret: Secret) -> io::Result<Self> {
        let mut keys = Self {
            algorithm,
            key: [0; 32],
            iv: [0; aead::NONCE_LEN],
            seq: 0,
            secret,
            expanded: None,
        };
        let len = algorithm.key_len();
        keys.secret.expand_label(b"key", &mut keys.key[..len])?;
        keys.secret.expand_label(b"iv", &mut keys.iv)?;
        Ok(keys)
    }

    fn expanded(&mut self) -> &LessSafeKey {
        self.expanded.get_or_insert_with(|| {
            let key = &self.key[..self.algorithm.key_len()];
            let unbound = UnboundKey::new(self.algorithm, key).expect("key length checked");
            Box::new(LessSafeKey::new(unbound))
        })
    }

    /// The next record's nonce; the counter moves on.
    fn next_nonce(&mut self) -> io::Result<Nonce> {
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| invalid("record counter exhausted"))?;
        Ok(Nonce::assume_unique_for_key(nonce))
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        // Key material does not outlive the session in freed memory.
        wipe(&mut self.key);
        wipe(&mut self.iv);
    }
}

/// What opening the bytes at hand found besides application data.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Opened {
    /// Bytes of `incoming` used up (complete records); the rest is a partial record.
    pub consumed: usize,
    /// The client sent close_notify: no more data follows.
    pub closed: bool,
}

/// A TLS 1.3 connection's record protection after the handshake; see the module docs.
pub struct Records {
    tx: Keys,
    rx: Keys,
    /// Records the sending key may still seal before a key update.
    pub(super) tx_left: u64,
}

impl Records {
    /// Takes over from rustls once its handshake is done and all it wrote is queued, with
    /// the client's and the server's traffic secrets from [`Handover::take`].
    pub fn new(
        extracted: rustls::ExtractedSecrets,
        (client, server): (Secret, Secret),
    ) -> io::Result<Self> {
        Ok(Self {
            tx: Keys::new(extracted.tx.0, extracted.tx.1, server)?,
            rx: Keys::new(extracted.rx.0, extracted.rx.1, client)?,
            tx_left: KEY_LIFETIME,
        })
    }

    /// Encrypts application data onto `out`, in as many records as it takes.
    pub fn seal(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.tx_left < data.len().div_ceil(MAX_PLAINTEXT) as u64 {
            self.update_tx_key(out)?;
        }
        out.reserve(data.len() + data.len().div_ceil(MAX_PLAINTEXT) * (HEADER + 1 + TAG));
        for chunk in data.chunks(MAX_PLAINTEXT) {
            self.seal_record(APPLICATION_DATA, chunk, out)?;
        }
        Ok(())
    }

    /// Appends a close_notify alert to `out`.
    pub fn seal_close_notify(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.seal_record(ALERT, &[1, CLOSE_NOTIFY], out)
    }

    fn seal_record(&mut self, typ: u8, body: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let len = body.len() + 1 + TAG;
        let header = [APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8];
        let start = out.len();
        out.extend_from_slice(&header);
        out.extend_from_slice(body);
        out.push(typ);
        let nonce = self.tx.next_nonce()?;
        self.tx_left = self.tx_left.saturating_sub(1);
        let sealed = self.tx.expanded().seal_in_place_separate_tag(
            nonce,
            Aad::from(header),
            &mut out[start + HEADER..],
        );
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(invalid("sealing a record failed"))
            }
        }
    }

    /// Moves the sending side to its next key, telling the client with a KeyUpdate sealed
    /// under the old one.
    fn update_tx_key(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.seal_record(HANDSHAKE, &[KEY_UPDATE, 0, 0, 1, 0], out)?;
        self.tx = self.tx.next()?;
        self.tx_left = KEY_LIFETIME;
        Ok(())
    }

    /// Opens every complete record at the front of `incoming`: application data is appended
    /// to `plaintext`, replies the protocol needs (a key update) to `out`.
    pub fn open(
        &mut self,
        incoming: &mut [u8],
        plaintext: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> io::Result<Opened> {
        let mut opened = Opened::default();
        while !opened.closed {
            let rest = &mut incoming[opened.consumed..];
            let Some(header) = rest.get(..HEADER) else {
                break;
            };
            let header: [u8; HEADER] = header.try_into().expect("five bytes");
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            if header[1] != 3 {
                return Err(invalid("not a TLS record"));
            }
            if len > MAX_CIPHERTEXT {
                return Err(invalid("record too long"));
            }
            let Some(body) = rest.get_mut(HEADER..HEADER + len) else {
                break;
            };
            opened.consumed += HEADER + len;
            if header[0] != APPLICATION_DATA {
                // Change-cipher-spec too: RFC 8446 D.4 allows it only before Finished.
                return Err(invalid("unprotected record after the handshake"));
            }
            let nonce = self.rx.next_nonce()?;
            let inner = self
                .rx
                .expanded()
                .open_in_place(nonce, Aad::from(header), body)
                .map_err(|_| invalid("record failed to decrypt"))?;
            let Some(end) = inner.iter().rposition(|&b| b != 0) else {
                return Err(invalid("record without a content type"));
            };
            let (content, typ) = (&inner[..end], inner[end]);
            match typ {
                APPLICATION_DATA => plaintext.extend_from_slice(content),
                ALERT => match content {
                    [_, CLOSE_NOTIFY] => opened.closed = true,
                    [_, code] => return Err(invalid(&format!("client sent alert {code}"))),
                    _ => return Err(invalid("malformed alert")),
                },
                HANDSHAKE => self.on_handshake(content, out)?,
                _ => return Err(invalid("unexpected record type")),
            }
        }
        // Clients send little: the receiving key is expanded per read, not kept.
        self.rx.expanded = None;
        Ok(opened)
    }

    /// A post-handshake message from the client; only KeyUpdate may come (RFC 8446 4.6).
    fn on_handshake(&mut self, mut messages: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        while let [typ, a, b, c, rest @ ..] = messages {
            let len = u32::from_be_bytes([0, *a, *b, *c]) as usize;
            if rest.len() < len {
                return Err(invalid("handshake message split across records"));
            }
            let (body, after) = rest.split_at(len);
            messages = after;
            let requested = match (*typ, body) {
                (KEY_UPDATE, [0]) => false,
                (KEY_UPDATE, [1]) => true,
                _ => return Err(invalid("unexpected handshake message")),
            };
            self.rx = self.rx.next()?;
            if requested {
                self.update_tx_key(out)?;
            }
        }
        if messages.is_empty() {
            Ok(())
        } else {
            Err(invalid("truncated handshake message"))
        }
    }

    /// Drops the sending key's expansion; the next record sealed builds it again.
    pub fn release(&mut self) {
        self.tx.expanded = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Both ends of a connection: what one seals, the other opens.
    fn pair() -> (Records, Records) {
        let (c, s) = (Secret::of(&[7; 32]).unwrap(), Secret::of(&[9; 32]).unwrap());
        let keys = |secret: &Secret| Keys::derived(&aead::AES_128_GCM, secret.clone()).unwrap();
        let client = Records {
            tx: keys(&c),
            rx: keys(&s),
            tx_left: KEY_LIFETIME,
        };
        let server = Records {
            tx: keys(&s),
            rx: keys(&c),
            tx_left: KEY_LIFETIME,
        };
        (client, server)
    }

    fn open_all(to: &mut Records, mut wire: Vec<u8>) -> io::Result<(Vec<u8>, Opened)> {
        let (mut plain, mut out) = (Vec::new(), Vec::new());
        let opened = to.open(&mut wire, &mut plain, &mut out)?;
        Ok((plain, opened))
    }

    #[test]
    fn data_of_every_size_and_close_notify_cross() {
        let (mut client, mut server) = pair();
        for size in [0, 1, 100, MAX_PLAINTEXT, MAX_PLAINTEXT + 1, 40_000] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut wire = Vec::new();
            client.seal(&data, &mut wire).unwrap();
            let (plain, opened) = open_all(&mut server, wire.clone()).unwrap();
            assert_eq!(plain, data, "{size} bytes");
            assert_eq!(opened.consumed, wire.len());
            assert!(!opened.closed);
        }
        let mut wire = Vec::new();
        client.seal_close_notify(&mut wire).unwrap();
        assert!(open_all(&mut server, wire).unwrap().1.closed);
    }

    #[test]
    fn partial_records_wait_and_tampered_ones_fail() {
        let (mut client, mut server) = pair();
        let mut wire = Vec::new();
        client.seal(b"hello", &mut wire).unwrap();
        let (plain, opened) = open_all(&mut server, wire[..wire.len() - 1].to_vec()).unwrap();
        assert_eq!((plain.len(), opened.consumed), (0, 0), "waits for the rest");
        let mut tampered = wire.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open_all(&mut server, tampered).is_err());
        // A replayed record fails too: the counter has moved on.
        let (mut client, mut server) = pair();
        let mut wire = Vec::new();
        client.seal(b"once", &mut wire).unwrap();
        open_all(&mut server, wire.clone()).unwrap();
        assert!(open_all(&mut server, wire).is_err());
    }

    proptest! {
        /// Whatever a client sends, opening it ends in data or an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let (_, mut server) = pair();
            let _ = open_all(&mut server, bytes);
        }

        /// Properly sealed records of any content type and content: application data comes
        /// through whole, anything else is an alert, a key update or an error.
        #[test]
        fn sealed_records_of_any_type(typ in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (mut client, mut server) = pair();
            let mut wire = Vec::new();
            client.seal_record(typ, &body, &mut wire).unwrap();
            let opened = open_all(&mut server, wire);
            if typ == APPLICATION_DATA {
                prop_assert_eq!(opened.unwrap().0, body);
            }
        }
    }
}
