//! Reading recorded upstream traffic: sigcast's JSON lines, hftbacktest's gzip lines and
//! cryptofeed's text captures, as one stream of raw messages with receive times.
//!
//! Formats, by how a file starts:
//! - `*.gz`: gzip text, each line `<receive ns> <raw combined-stream JSON>`.
//! - first line `wss://...  <-> <time>` (cryptofeed): then `<receive s.frac>: <raw JSON>`.
//! - anything else is JSON lines: `{"recv_ns":N,"market":"spot","msg":{...}}` (what
//!   `sigcast record` writes) or a bare combined-stream message per line.
//!
//! The market (spot or futures) comes from the cryptofeed URL, the JSON-lines `market` field,
//! or else the file name (`usdm`, `futures` or `fapi` in it mean futures).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::Market;

/// One recorded upstream message.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub market: Market,
    /// Receive time, nanoseconds since the Unix epoch (0 when the format has none).
    pub received_ns: i64,
    /// The raw message text as Binance sent it.
    pub text: String,
}

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot open recording {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Hftbacktest,
    Cryptofeed,
    JsonLines,
}

/// A line of sigcast's own recording format.
#[derive(Deserialize)]
struct JsonLine<'a> {
    recv_ns: i64,
    market: Market,
    #[serde(borrow)]
    msg: &'a RawValue,
}

/// Iterates the messages of one recording file.
pub struct RecordingReader {
    path: PathBuf,
    lines: Box<dyn BufRead + Send>,
    format: Format,
    market: Market,
    line_no: usize,
    buf: String,
    /// Bytes of the file read so far (compressed bytes for gzip), for progress.
    consumed: Arc<AtomicU64>,
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn market_from_name(path: &Path) -> Market {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if ["usdm", "futures", "fapi"].iter().any(|k| name.contains(k)) {
        Market::Futures
    } else {
        Market::Spot
    }
}

impl RecordingReader {
    pub fn open(path: &Path) -> Result<Self, RecordingError> {
        let file = File::open(path).map_err(|source| RecordingError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(path, file)
    }

    /// Reads a recording from `input`, its format and market told by `path` (the name's
    /// extension and words) and its first line, as [`Self::open`] does for a file.
    pub fn from_reader(
        path: &Path,
        input: impl Read + Send + 'static,
    ) -> Result<Self, RecordingError> {
        let consumed = Arc::new(AtomicU64::new(0));
        let file = Counting {
            inner: input,
            count: consumed.clone(),
        };
        let gz = path.extension().is_some_and(|e| e == "gz");
        let mut lines: Box<dyn BufRead + Send> = if gz {
            Box::new(BufReader::with_capacity(
                1 << 16,
                flate2::read::GzDecoder::new(file),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, file))
        };
        let mut market = market_from_name(path);
        let mut format = if gz {
            Format::Hftbacktest
        } else {
            Format::JsonLines
        };
        let mut line_no = 0;
        if !gz {
            let head = lines.fill_buf().map_err(|source| RecordingError::Open {
                path: path.to_path_buf(),
                source,
            })?;
            if head.starts_with(b"wss://") || head.starts_with(b"ws://") {
                let mut first = String::new();
                lines
                    .read_line(&mut first)
                    .map_err(|source| RecordingError::Open {
                        path: path.to_path_buf(),
                        source,
                    })?;
                line_no = 1;
                format = Format::Cryptofeed;
                market = if first.contains("fstream") || first.contains("/fapi") {
                    Market::Futures
                } else {
                    Market::Spot
                };
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            lines,
            format,
            market,
            line_no,
            buf: String::with_capacity(4096),
            consumed,
        })
    }

    /// Bytes of the file read so far (compressed bytes for gzip).
    pub fn consumed(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// A handle on [`Self::consumed`] that can be read from elsewhere.
    pub fn consumed_counter(&self) -> Arc<AtomicU64> {
        self.consumed.clone()
    }

    /// The market this recording was taken from (JSON lines may override it per line).
    pub fn market(&self) -> Market {
        self.market
    }

    fn error(&self, reason: impl Into<String>) -> RecordingError {
        RecordingError::Line {
            path: self.path.clone(),
            line: self.line_no,
            reason: reason.into(),
        }
    }

    fn split(&self, line: &str) -> Result<Recorded, RecordingError> {
        match self.format {
            Format::Hftbacktest => {
                let (ns, json) = line
                    .split_once(' ')
                    .ok_or_else(|| self.error("expected `<ns> <json>`"))?;
                let received_ns = ns
                    .parse()
                    .map_err(|_| self.error("receive time is not an integer"))?;
                Ok(Recorded {
                    market: self.market,
                    received_ns,
                    text: json.to_string(),
                })
            }
            Format::Cryptofeed => {
                let (secs, json) = line
                    .split_once(": ")
                    .ok_or_else(|| self.error("expected `<seconds>: <json>`"))?;
                let secs: f64 = secs
                    .parse()
                    .map_err(|_| self.error("receive time is not a number"))?;
                Ok(Recorded {
                    market: self.market,
                    received_ns: (secs * 1e9) as i64,
                    text: json.to_string(),
                })
            }
            Format::JsonLines => {
                if line.starts_with("{\"recv_ns\"") {
                    let l: JsonLine = serde_json::from_str(line)
                        .map_err(|e| self.error(format!("not a recording line: {e}")))?;
                    Ok(Recorded {
                        market: l.market,
                        received_ns: l.recv_ns,
                        text: l.msg.get().to_string(),
                    })
                } else {
                    Ok(Recorded {
                        market: self.market,
                        received_ns: 0,
                        text: line.to_string(),
                    })
                }
            }
        }
    }
}

impl Iterator for RecordingReader {
    type Item = Result<Recorded, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.lines.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(self.error(format!("read failed: {e}")))),
            }
            self.line_no += 1;
            let line = self.buf.trim_end();
            if line.is_empty() {
                continue;
            }
            return Some(self.split(line));
        }
    }
}

/// Formats one message as a line of sigcast's recording format (no trailing newline).
pub fn json_line(market: Market, received_ns: i64, raw: &str) -> String {
    format!(
        "{{\"recv_ns\":{received_ns},\"market\":\"{}\",\"msg\":{raw}}}",
        market.as_str()
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_all_three_formats() {
        let dir = tempfile::tempdir().unwrap();
        let msg = r#"{"stream":"btcusdt@trade","data":{"e":"trade"}}"#;

        let cf = dir.path().join("capture.txt");
        std::fs::write(
            &cf,
            format!("wss://fstream.binance.com/stream?streams=x <-> 1.0\n1626992741.5: {msg}\n\n"),
        )
        .unwrap();
        let got: Vec<_> = RecordingReader::open(&cf)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].market, Market::Futures);
        assert_eq!(got[0].received_ns, 1_626_992_741_500_000_000);
        assert_eq!(got[0].text, msg);

        let gz = dir.path().join("spot_x.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        writeln!(enc, "1723161254087891268 {msg}").unwrap();
        enc.finish().unwrap();
        let got: Vec<_> = RecordingReader::open(&gz)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            (got[0].market, got[0].received_ns),
            (Market::Spot, 1723161254087891268)
        );

        let jl = dir.path().join("rec.jsonl");
        std::fs::write(
            &jl,
            format!("{}\n{msg}\n", json_line(Market::Futures, 42, msg)),
        )
        .unwrap();
        let got: Vec<_> = RecordingReader::open(&jl)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            (got[0].market, got[0].received_ns, got[0].text.as_str()),
            (Market::Futures, 42, msg)
        );
        assert_eq!((got[1].market, got[1].received_ns), (Market::Spot, 0));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let cf = dir.path().join("capture.txt");
        std::fs::write(
            &cf,
            "wss://stream.binance.com:9443/stream <-> 1.0\nnot a line\n",
        )
        .unwrap();
        let err = RecordingReader::open(&cf)
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(err.contains("capture.txt:2"), "{err}");
    }
}
