//! The hub's numbering, submit and confirm, fan-out and test signals.

use super::*;

fn signal() -> Signal {
    Signal {
        side: Side::Buy,
        symbol: "BTCUSDT".into(),
        price: 75000.0,
        timestamp: 1720000000,
        strategy: "ma-fast".into(),
        interval: "1s".into(),
        reason: "r".into(),
    }
}

#[test]
fn contract_shape() {
    let v: serde_json::Value = serde_json::from_str(encode(&signal(), false).as_str()).unwrap();
    assert_eq!(v["type"], "buy");
    assert_eq!(v["content"]["symbol"], "BTCUSDT");
    assert!(v["content"]["price"].is_f64());
    assert_eq!(v["content"]["price"], 75000.0);
    assert!(v["content"]["timestamp"].is_i64());
    assert_eq!(v["content"]["timestamp"], 1720000000);
    assert_eq!(v["is_test"], false);
    assert!(encode(&signal(), false).as_str().starts_with(
        r#"{"type":"buy","content":{"symbol":"BTCUSDT","price":75000.0,"timestamp":1720000000,"#
    ));
}

#[test]
fn one_serialization_shared_by_all() {
    let hub = Hub::new(vec!["BTCUSDT".into()], 8);
    let (mut a, mut b) = (hub.subscribe(), hub.subscribe());
    assert_eq!(hub.publish(&signal()), 2);
    let (fa, fb) = (a.try_recv().unwrap(), b.try_recv().unwrap());
    assert_eq!(
        fa.frame.as_str().as_ptr(),
        fb.frame.as_str().as_ptr(),
        "same bytes, not a copy"
    );
    assert_eq!((fa.seq, fb.seq), (1, 1));
    assert!(fa.frame.as_str().ends_with(",\"is_test\":false,\"seq\":1}"));
    hub.publish(&signal());
    assert_eq!(a.try_recv().unwrap().seq, 2, "numbered in order");
}

#[test]
fn test_frames_use_latest_price() {
    let hub = Hub::new(vec!["BTCUSDT".into(), "ETHUSDT".into()], 8);
    hub.mark_price("ETHUSDT", 3456.5);
    let [buy, sell] = hub.test_frames(1, 5, None, "test").unwrap();
    let b: serde_json::Value = serde_json::from_str(buy.as_str()).unwrap();
    let s: serde_json::Value = serde_json::from_str(sell.as_str()).unwrap();
    assert_eq!(
        (b["type"].as_str(), s["type"].as_str()),
        (Some("buy"), Some("sell"))
    );
    assert_eq!(b["content"]["price"], 3456.5);
    assert_eq!(b["is_test"], true);
}

/// A scoped client's tests name only symbols in its scope, under the strategy given;
/// with none of its symbols tracked, there is no test to give.
#[test]
fn test_frames_stay_in_scope() {
    let hub = Hub::new(vec!["BTCUSDT".into(), "ETHUSDT".into()], 8);
    hub.mark_price("BTCUSDT", 75000.0);
    hub.mark_price("ETHUSDT", 3456.5);
    let eth_only = |s: &str| s == "ETHUSDT";
    for n in 0..4 {
        let [buy, _] = hub.test_frames(n, 5, Some(&eth_only), "ma-fast").unwrap();
        let b: serde_json::Value = serde_json::from_str(buy.as_str()).unwrap();
        assert_eq!(b["content"]["symbol"], "ETHUSDT", "round {n}");
        assert_eq!(b["content"]["strategy"], "ma-fast");
    }
    let sol_only = |s: &str| s == "SOLUSDT";
    assert!(hub.test_frames(0, 5, Some(&sol_only), "test").is_none());
}
