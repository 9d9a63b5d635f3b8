//! A serialized message as every session sends it: JSON text, shared by reference count.

use bytes::Bytes;

/// One message's bytes, serialized once by the hub and sent as they are by every session
/// (a clone is a reference count). Always UTF-8 JSON text: it is made only from strings.
/// The hub's own type, so the hub does not name the transport that sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Frame(Bytes);

impl Frame {
    /// The bytes sessions put on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text (frames are made only from strings, so this never comes up empty for
    /// a frame that has text).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The shared bytes themselves, for a transport that takes them without a copy.
    pub fn bytes(&self) -> Bytes {
        self.0.clone()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Frame(Bytes::from(text))
    }
}

impl From<&'static str> for Frame {
    fn from(text: &'static str) -> Self {
        Frame(Bytes::from_static(text.as_bytes()))
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
