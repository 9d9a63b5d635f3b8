//! Properties over generated input: every parser of outside input answers (an error is an
//! answer) and never panics, and a signal read back from the frame sigcast wrote for it is
//! the signal itself. The fuzz targets (fuzz/, run by scripts/fuzz) search the same parsers
//! for longer with coverage guidance; these run in every `cargo test`.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::time::SystemTime;

use proptest::prelude::*;
use sigcast::config::{Config, Overrides};
use sigcast::hub::feed::MarketTopic;
use sigcast::hub::{encode, encode_seq, inbound};
use sigcast::market::Market;
use sigcast::market::binance;
use sigcast::market::recording::RecordingReader;
use sigcast::server::command;
use sigcast::server::filter::Topic;
use sigcast::strategy::{Side, Signal};

const NOW: i64 = 1_720_000_000;

/// Text that looks like what the parser expects often enough to get past its first check.
fn json_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\{\"(type|stream|data|content|e|s|p|q|k|topic|since|signal)\":[ -~]{0,60}\\}",
        "\\{\"stream\":\"[a-z]{3,8}usdt@(trade|aggTrade|kline_1m|bookTicker|depth)\",\"data\":\\{[ -~]{0,120}\\}\\}",
    ]
}

/// A signal as strategies and publishers produce them (the checks `inbound::parse` applies).
fn signal() -> impl Strategy<Value = Signal> {
    (
        prop_oneof![Just(Side::Buy), Just(Side::Sell)],
        "[A-Z0-9]{1,20}",
        // Positive, finite, from tiny to huge, with full f64 precision.
        prop_oneof![
            1e-12f64..1e15,
            any::<f64>().prop_filter("positive finite", |p| p.is_finite() && *p > 0.0),
        ],
        (NOW - 7 * 86_400)..(NOW + 300),
        "[A-Za-z0-9_-]{1,64}",
        "[0-9a-z]{0,8}",
        "[ -~\u{00e9}\u{4e70}]{0,60}",
    )
        .prop_map(
            |(side, symbol, price, timestamp, strategy, interval, reason)| Signal {
                side,
                symbol,
                price,
                timestamp,
                strategy,
                interval,
                reason,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn client_commands_never_panic(text in json_like()) {
        match command::parse(text.trim()) {
            command::Command::Subscribe(t) | command::Command::Unsubscribe(t) => {
                let _ = MarketTopic::parse(&t);
                let _ = Topic::parse(&t);
            }
            command::Command::Publish(Some(body)) => {
                let _ = inbound::parse(&body, NOW);
            }
            _ => {}
        }
        let _ = Topic::parse(&text);
        let _ = MarketTopic::parse(&text);
    }

    #[test]
    fn binance_payloads_never_panic(text in json_like()) {
        for market in [Market::Spot, Market::Futures] {
            let _ = binance::parse(market, &text, SystemTime::now());
        }
    }

    #[test]
    fn replay_files_never_panic(
        name in prop_oneof![Just("r.jsonl"), Just("usdm_r.jsonl"), Just("r.cryptofeed.txt"), Just("r.gz")],
        lines in proptest::collection::vec(json_like(), 0..8),
        prefix in prop_oneof![Just(""), Just("wss://stream.binance.com:9443/ws\n"), Just("1723075200000000000 ")],
    ) {
        let body = format!("{prefix}{}", lines.join("\n"));
        if let Ok(reader) = RecordingReader::from_reader(Path::new(name), Cursor::new(body.into_bytes())) {
            for recorded in reader.take(100).flatten() {
                let _ = binance::parse(recorded.market, &recorded.text, SystemTime::now());
            }
        }
    }

    #[test]
    fn config_and_signal_files_never_panic(
        text in prop_oneof![
            any::<String>(),
            "\\[(server|tls|auth|market|hub|admin|log)\\]\n[a-z_]{1,20} = [ -~]{0,30}\n",
            "\\[\\[strategy\\]\\]\nname = \"[a-z]{1,8}\"\nkind = \"(ma_cross|rsi|macd|bollinger|donchian|x)\"\n[a-z_]{1,10} = [ -~]{0,20}\n",
        ],
    ) {
        let _ = Config::checked(Some((Path::new("/nonexistent/sigcast.toml"), &text)), &BTreeMap::new(), &Overrides::default());
        let _ = sigcast::strategy::definition::from_text(&text);
    }

    #[test]
    fn publish_bodies_never_panic(text in json_like()) {
        if let Ok(body) = serde_json::from_str::<serde_json::Value>(&text) {
            let _ = inbound::parse(&body, NOW);
        }
    }

    /// A signal sigcast serializes (test reply or numbered broadcast) reads back as itself.
    #[test]
    fn serialized_signals_parse_back_to_the_original(signal in signal(), seq in any::<u64>()) {
        for frame in [encode(&signal, false), encode_seq(&signal, seq)] {
            let value: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
            let back = inbound::parse(&value, NOW).map_err(TestCaseError::fail)?;
            prop_assert_eq!(back.side, signal.side);
            prop_assert_eq!(&back.symbol, &signal.symbol);
            prop_assert_eq!(back.price.to_bits(), signal.price.to_bits());
            prop_assert_eq!(back.timestamp, signal.timestamp);
            prop_assert_eq!(&back.strategy, &signal.strategy);
            prop_assert_eq!(&back.interval, &signal.interval);
            prop_assert_eq!(&back.reason, &signal.reason);
        }
    }
}
