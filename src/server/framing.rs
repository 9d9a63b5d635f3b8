//! Server text frames written straight to TLS: a batch of hub frames becomes one plaintext
//! (RFC 6455 headers in front of the shared payloads) sealed as one TLS record and sent with
//! one syscall, without going through tungstenite's per-session write buffer.

use std::cell::RefCell;

use crate::hub::Frame;

/// A server frame is unmasked: FIN + text opcode, then the length.
const FIN_TEXT: u8 = 0x81;

thread_local! {
    /// One plaintext scratch buffer per runtime thread, reused by every session it runs:
    /// no session keeps a write buffer of its own.
    static PLAINTEXT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Appends `payload` as one final, unmasked text frame.
fn put_text(out: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len();
    out.push(FIN_TEXT);
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Runs `seal` on the frames of `payloads`, laid out one after another in this thread's
/// scratch buffer (emptied afterwards; its capacity stays for the next batch).
pub fn with_text_frames<R>(payloads: &[Frame], seal: impl FnOnce(&[u8]) -> R) -> R {
    PLAINTEXT.with_borrow_mut(|out| {
        // `seal` (encryption into the TLS stream's own buffer) never calls back in here.
        for p in payloads {
            put_text(out, p.as_bytes());
        }
        let r = seal(out);
        out.clear();
        if out.capacity() > 1 << 20 {
            // A rare huge batch (a resume page of big frames) does not pin its memory.
            *out = Vec::new();
        }
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

    /// tungstenite reads the frames back: same payloads, FIN, text, unmasked, all lengths.
    #[test]
    fn frames_read_back_with_tungstenite() {
        let payloads: Vec<Frame> = [0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000]
            .iter()
            .map(|&n| Frame::from("x".repeat(n)))
            .collect();
        let bytes = with_text_frames(&payloads, |b| b.to_vec());
        let mut cursor = std::io::Cursor::new(bytes.as_slice());
        for p in &payloads {
            let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
            assert!(header.is_final);
            assert!(header.mask.is_none());
            assert_eq!(
                header.opcode,
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text
                )
            );
            assert_eq!(len as usize, p.len());
            let at = cursor.position() as usize;
            assert_eq!(&bytes[at..at + p.len()], p.as_bytes());
            cursor.set_position((at + p.len()) as u64);
        }
        assert_eq!(cursor.position() as usize, bytes.len());
    }
}
