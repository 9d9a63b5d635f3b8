//! A client's text message: the command parser, then whatever the command carries (signal
//! and market-data topics, a published signal body). Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigcast::hub::feed::MarketTopic;
use sigcast::server::command::{self, Command};
use sigcast::server::filter::Topic;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match command::parse(text.trim()) {
        Command::Subscribe(topic) | Command::Unsubscribe(topic) => {
            if MarketTopic::is_market(&topic) {
                let _ = MarketTopic::parse(&topic);
            } else {
                let _ = Topic::parse(&topic);
            }
        }
        Command::Publish { signal, id } => {
            if let Some(body) = signal {
                let _ = sigcast::hub::inbound::parse(&body, 1_720_000_000);
            }
            if let Some(id) = id.as_ref().and_then(|id| id.as_str()) {
                let _ = sigcast::hub::keys::check_id(id);
            }
        }
        _ => {}
    }
});
