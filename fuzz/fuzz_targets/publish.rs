//! The publish API's body (`POST /v1/signals`, or a session's `publish` command): JSON,
//! then the signal checks. A body that passes must come back unchanged from its own frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigcast::hub::{encode, inbound};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let now = 1_720_000_000;
    if let Ok(signal) = inbound::parse(&body, now) {
        let frame = encode(&signal, false);
        let again: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        let back = inbound::parse(&again, now).expect("a frame sigcast wrote parses");
        assert_eq!(back.symbol, signal.symbol);
        assert_eq!(back.side, signal.side);
        assert_eq!(back.price.to_bits(), signal.price.to_bits());
        assert_eq!(back.timestamp, signal.timestamp);
    }
});
