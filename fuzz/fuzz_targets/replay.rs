//! A recording file in each replay format: sigcast's JSON lines (spot or futures by name),
//! hftbacktest's gzip of `<ns> <json>` lines (the input is compressed here first) and
//! cryptofeed's text (told by its first line). The first byte picks the format.
#![no_main]

use std::io::{Cursor, Write};
use std::path::Path;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use sigcast::market::binance;
use sigcast::market::recording::RecordingReader;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (name, bytes) = match pick % 4 {
        0 => ("fuzz.jsonl", body.to_vec()),
        1 => ("usdm_fuzz.jsonl", body.to_vec()),
        2 => ("spot_fuzz.cryptofeed.txt", body.to_vec()),
        _ => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(body).unwrap();
            ("usdm_fuzz.gz", gz.finish().unwrap())
        }
    };
    let Ok(reader) = RecordingReader::from_reader(Path::new(name), Cursor::new(bytes)) else {
        return;
    };
    for recorded in reader.take(1000).flatten() {
        let _ = binance::parse(recorded.market, &recorded.text, SystemTime::UNIX_EPOCH);
    }
});
