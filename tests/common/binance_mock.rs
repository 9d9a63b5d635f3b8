//! A Binance-compatible mock for upstream tests, fed with the real recordings.
//!
//! WebSocket (`ws://127.0.0.1:PORT/.../stream[?streams=a/b]`): `SUBSCRIBE`, `UNSUBSCRIBE` and
//! `LIST_SUBSCRIPTIONS` with Binance's replies; recorded messages played from a shared tape to
//! each connection's subscriptions; server pings whose pongs it expects; close 1008 "Too many
//! requests" for a client over the incoming-message limit. Faults: [`MockBinance::stop`] and
//! [`MockBinance::restart`], [`MockBinance::set_silent`], a connection lifetime, and
//! malformed frames mixed into the feed.
//!
//! REST (`http://127.0.0.1:PORT`): `/api/v3/aggTrades`, `/fapi/v1/aggTrades` (`fromId`,
//! `limit`) and `/api/v3/klines`, `/fapi/v1/klines`, answered from the same tape (klines
//! aggregated from its aggTrades), and only with what has been played so far.
//!
//! About 780 lines: one mock for both of Binance's faces (WebSocket streams and the REST
//! backfill) sharing one tape and one fault switchboard.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sigcast::market::binance::{Parsed, parse};
use sigcast::market::kline::KlineBuilder;
use sigcast::market::recording::RecordingReader;
use sigcast::market::{AggTrade, Interval, Market, MarketEventKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// One recorded message on the tape.
pub struct Entry {
    pub stream: String,
    pub text: String,
    /// Set for aggTrade entries: symbol and the trade, for REST and for assertions.
    pub agg: Option<(String, AggTrade)>,
}

impl Entry {
    /// A made-up aggTrade of `symbol` (futures wire format) at `time_ms` and `price`.
    pub fn agg_trade(symbol: &str, id: u64, time_ms: i64, price: &str) -> Entry {
        let stream = format!("{}@aggTrade", symbol.to_lowercase());
        let text = format!(
            r#"{{"stream":"{stream}","data":{{"e":"aggTrade","E":{time_ms},"s":"{symbol}","a":{id},"p":"{price}","q":"2","f":{id},"l":{id},"T":{time_ms},"m":false}}}}"#
        );
        let agg = match parse(Market::Futures, &text, SystemTime::now()) {
            Ok(Parsed::Event(e)) => match e.kind {
                MarketEventKind::AggTrade(a) => Some((e.symbol.to_string(), a)),
                _ => None,
            },
            _ => None,
        };
        Entry { stream, text, agg }
    }
}

/// Recorded messages in play order.
pub struct Tape {
    pub market: Market,
    pub entries: Vec<Entry>,
}

impl Tape {
    /// One futures aggTrade of `symbol` per second at each price, ids from 1, from second 0.
    pub fn per_second(symbol: &str, prices: &[&str]) -> Tape {
        Tape {
            market: Market::Futures,
            entries: prices
                .iter()
                .enumerate()
                .map(|(i, p)| Entry::agg_trade(symbol, i as u64 + 1, i as i64 * 1000, p))
                .collect(),
        }
    }

    /// Every combined-stream message of the recordings (snapshots and control lines dropped).
    pub fn from_recordings(files: &[&Path]) -> Tape {
        let mut market = Market::Spot;
        let mut entries = Vec::new();
        for file in files {
            for r in RecordingReader::open(file).unwrap() {
                let r = r.unwrap();
                market = r.market;
                let Some(stream) = r
                    .text
                    .strip_prefix("{\"stream\":\"")
                    .and_then(|s| s.split('"').next())
                else {
                    continue;
                };
                let agg = match parse(r.market, &r.text, SystemTime::now()) {
                    Ok(Parsed::Event(e)) => match e.kind {
                        MarketEventKind::AggTrade(t) => Some((e.symbol.to_string(), t)),
                        _ => None,
                    },
                    _ => None,
                };
                entries.push(Entry {
                    stream: stream.to_string(),
                    text: r.text,
                    agg,
                });
            }
        }
        Tape { market, entries }
    }

    /// The tape's aggTrades only, played `loops` times over, each round renumbered per symbol
    /// (`a`, `f`, `l` continue from the round before, times move on by the round's span), so
    /// a long run of real recorded trades keeps Binance's id rules: every id once, each `a`
    /// one above the last, `f` one above the last `l`.
    pub fn looped_agg_trades(&self, loops: usize) -> Tape {
        struct Span {
            a: (u64, u64),
            trade: (u64, u64),
            time: (i64, i64),
        }
        let mut spans: HashMap<String, Span> = HashMap::new();
        for (symbol, t) in self.entries.iter().filter_map(|e| e.agg.as_ref()) {
            let span = spans.entry(symbol.clone()).or_insert(Span {
                a: (t.id, t.id),
                trade: (t.first_trade_id, t.last_trade_id),
                time: (t.time_ms, t.time_ms),
            });
            span.a.1 = t.id;
            span.trade.1 = t.last_trade_id;
            span.time.1 = t.time_ms;
        }
        let mut entries = Vec::new();
        for round in 0..loops as u64 {
            for e in &self.entries {
                let Some((symbol, _)) = &e.agg else { continue };
                let span = &spans[symbol];
                let shift_a = round * (span.a.1 - span.a.0 + 1);
                let shift_t = round * (span.trade.1 - span.trade.0 + 1);
                let shift_ms = round as i64 * (span.time.1 - span.time.0 + 1000);
                // Rewritten in place, so the message keeps Binance's field order.
                let v: Value = serde_json::from_str(&e.text).unwrap();
                let mut text = e.text.clone();
                for (field, by) in [
                    ("a", shift_a as i64),
                    ("f", shift_t as i64),
                    ("l", shift_t as i64),
                    ("E", shift_ms),
                    ("T", shift_ms),
                ] {
                    let old = v["data"][field].as_i64().unwrap();
                    let from = format!("\"{field}\":{old},");
                    assert_eq!(text.matches(&from).count(), 1, "{field} in {text}");
                    text = text.replace(&from, &format!("\"{field}\":{},", old + by));
                }
                let agg = match parse(self.market, &text, SystemTime::now()) {
                    Ok(Parsed::Event(ev)) => match ev.kind {
                        MarketEventKind::AggTrade(t) => Some((ev.symbol.to_string(), t)),
                        _ => None,
                    },
                    _ => None,
                };
                assert!(agg.is_some(), "renumbered aggTrade does not parse: {text}");
                entries.push(Entry {
                    stream: e.stream.clone(),
                    text,
                    agg,
                });
            }
        }
        Tape {
            market: self.market,
            entries,
        }
    }

    /// The tape's `@trade` messages as `@aggTrade`s of one trade each (`a`, `f` and `l` the
    /// trade's id), everything else left out: a recording of trades, such as the
    /// hftbacktest ones, played to the candle strategies, which follow aggTrades.
    pub fn trades_as_agg_trades(&self) -> Tape {
        let entries = self
            .entries
            .iter()
            .filter(|e| e.stream.ends_with("@trade"))
            .map(|e| {
                let v: Value = serde_json::from_str(&e.text).unwrap();
                let d = &v["data"];
                let symbol = d["s"].as_str().unwrap();
                let stream = format!("{}@aggTrade", symbol.to_lowercase());
                let text = json!({
                    "stream": stream,
                    "data": {
                        "e": "aggTrade", "E": d["E"], "s": symbol, "a": d["t"], "p": d["p"],
                        "q": d["q"], "f": d["t"], "l": d["t"], "T": d["T"], "m": d["m"],
                    }
                })
                .to_string();
                let agg = match parse(self.market, &text, SystemTime::now()) {
                    Ok(Parsed::Event(ev)) => match ev.kind {
                        MarketEventKind::AggTrade(t) => Some((ev.symbol.to_string(), t)),
                        _ => None,
                    },
                    _ => None,
                };
                Entry { stream, text, agg }
            })
            .collect();
        Tape {
            market: self.market,
            entries,
        }
    }

    /// The tape as a recording `sigcast backtest` and `source.replay` read (sigcast's JSON
    /// lines), so a backtest sees exactly what the mock plays.
    pub fn write_recording(&self, path: &Path) {
        let market = match self.market {
            Market::Spot => "spot",
            Market::Futures => "futures",
        };
        let mut text = String::new();
        for e in &self.entries {
            text.push_str(&format!(
                "{{\"recv_ns\":0,\"market\":\"{market}\",\"msg\":{}}}\n",
                e.text
            ));
        }
        std::fs::write(path, text).unwrap();
    }

    /// Every stream name on the tape.
    pub fn streams(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.entries.iter().map(|e| e.stream.as_str()).collect();
        set.into_iter().map(String::from).collect()
    }

    /// The aggTrade ids of each symbol, in tape order: what a gap-free client must see.
    pub fn agg_ids(&self) -> HashMap<String, Vec<u64>> {
        let mut ids: HashMap<String, Vec<u64>> = HashMap::new();
        for (symbol, t) in self.entries.iter().filter_map(|e| e.agg.as_ref()) {
            ids.entry(symbol.clone()).or_default().push(t.id);
        }
        ids
    }
}

/// Knobs a test sets before or during a run.
pub struct Settings {
    /// Incoming messages per second per connection before a 1008 close (pongs count).
    pub message_limit: usize,
    pub ping_interval: Duration,
    /// A connection whose pong does not arrive within this is closed.
    pub pong_deadline: Duration,
    /// Connections are cut after this long (Binance's 24 h, shortened).
    pub lifetime: Option<Duration>,
    /// Every Nth played entry is preceded by malformed frames.
    pub malformed_every: Option<usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            message_limit: 10,
            ping_interval: Duration::from_secs(3),
            pong_deadline: Duration::from_secs(5),
            lifetime: None,
            malformed_every: None,
        }
    }
}

/// What the mock observed.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub connections: usize,
    pub subscribe_requests: usize,
    pub unsubscribe_requests: usize,
    /// Most incoming messages any connection sent within one second.
    pub max_messages_per_second: usize,
    /// Connections closed with 1008 for sending too fast.
    pub rate_closes: usize,
    pub pongs: usize,
    pub rest_requests: usize,
    /// The streams subscribed on the connection that most recently subscribed or unsubscribed.
    pub last_subscriptions: Vec<String>,
}

struct Shared {
    tape: Tape,
    settings: Mutex<Settings>,
    /// Entries played so far (the feed position).
    played: AtomicUsize,
    /// Announces each played entry's index to every connection.
    feed: broadcast::Sender<usize>,
    silent: AtomicBool,
    stats: Mutex<Stats>,
    /// Dropped to sever every connection at once (stop).
    kill: Mutex<broadcast::Sender<()>>,
    /// REST serves aggTrades only from this id on (older history "expired").
    rest_history_from: Mutex<u64>,
    /// Tells every connection to send `serverShutdown`.
    shutdown_notice: broadcast::Sender<()>,
    /// Tells every connection to close itself, as Binance does at 24 h.
    cut: broadcast::Sender<()>,
    /// One stream whose data is withheld (the connection and other streams carry on).
    silent_stream: Mutex<Option<String>>,
}

/// A running mock.
pub struct MockBinance {
    pub ws_addr: SocketAddr,
    pub rest_addr: SocketAddr,
    shared: Arc<Shared>,
    ws_task: Mutex<Option<JoinHandle<()>>>,
    rest_task: JoinHandle<()>,
    feeder: Mutex<Option<JoinHandle<()>>>,
}

impl MockBinance {
    pub async fn start(tape: Tape, settings: Settings) -> MockBinance {
        let (feed, _) = broadcast::channel(1 << 16);
        let (kill, _) = broadcast::channel(1);
        let shared = Arc::new(Shared {
            tape,
            settings: Mutex::new(settings),
            played: AtomicUsize::new(0),
            feed,
            silent: AtomicBool::new(false),
            stats: Mutex::new(Stats::default()),
            kill: Mutex::new(kill),
            rest_history_from: Mutex::new(0),
            shutdown_notice: broadcast::channel(4).0,
            cut: broadcast::channel(4).0,
            silent_stream: Mutex::new(None),
        });
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_addr = ws.local_addr().unwrap();
        let rest = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rest_addr = rest.local_addr().unwrap();
        let ws_task = tokio::spawn(accept_ws(ws, shared.clone()));
        let rest_task = tokio::spawn(accept_rest(rest, shared.clone()));
        MockBinance {
            ws_addr,
            rest_addr,
            shared,
            ws_task: Mutex::new(Some(ws_task)),
            rest_task,
            feeder: Mutex::new(None),
        }
    }

    pub fn ws_base(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    pub fn rest_base(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    /// A sigcast configuration whose live source is this mock, plus `extra` keys.
    pub fn sigcast_config(
        &self,
        material: &super::Material,
        extra: &[(&str, &str)],
    ) -> sigcast::config::Config {
        let settings = self.sigcast_settings();
        let mut keys: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        keys.extend_from_slice(extra);
        material.config(&keys)
    }

    /// The settings that point a sigcast at this mock (live source, endpoints, quick
    /// reconnects), for a configuration or a `serve` command line.
    pub fn sigcast_settings(&self) -> Vec<(&'static str, String)> {
        let (ws, rest) = (self.ws_base(), self.rest_base());
        vec![
            ("source.kind", "binance".into()),
            ("binance.spot_ws", ws.clone()),
            ("binance.futures_ws_market", format!("{ws}/market")),
            ("binance.futures_ws_public", format!("{ws}/public")),
            ("binance.spot_rest", rest.clone()),
            ("binance.futures_rest", rest),
            ("binance.backoff_initial", "50ms".into()),
            ("binance.backoff_max", "400ms".into()),
        ]
    }

    pub fn tape(&self) -> &Tape {
        &self.shared.tape
    }

    /// Plays the tape at `per_second` entries per second, from where it stands.
    pub fn play(&self, per_second: u32) {
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            let step = Duration::from_secs_f64(1.0 / per_second as f64);
            let mut tick = tokio::time::interval(step);
            loop {
                tick.tick().await;
                let i = shared.played.load(Ordering::SeqCst);
                if i >= shared.tape.entries.len() {
                    return;
                }
                shared.played.store(i + 1, Ordering::SeqCst);
                let _ = shared.feed.send(i);
            }
        });
        if let Some(old) = self.feeder.lock().unwrap().replace(task) {
            old.abort();
        }
    }

    /// Counts the first `n` entries as played without sending them: trades made before
    /// anyone connected, which REST still serves.
    pub fn skip_to(&self, n: usize) {
        self.shared.played.store(n, Ordering::SeqCst);
    }

    /// Stops the feed where it stands; `play` resumes it.
    pub fn pause(&self) {
        if let Some(f) = self.feeder.lock().unwrap().take() {
            f.abort();
        }
    }

    /// Entries played so far.
    pub fn played(&self) -> usize {
        self.shared.played.load(Ordering::SeqCst)
    }

    pub fn finished(&self) -> bool {
        self.played() >= self.shared.tape.entries.len()
    }

    /// Waits until `n` entries have been played.
    pub async fn wait_played(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.played() < n {
            assert!(
                Instant::now() < deadline,
                "mock feed stalled at {}",
                self.played()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Closes the listener and severs every connection without a close frame (a crash).
    pub fn stop(&self) {
        if let Some(task) = self.ws_task.lock().unwrap().take() {
            task.abort();
        }
        let (fresh, _) = broadcast::channel(1);
        let old = std::mem::replace(&mut *self.shared.kill.lock().unwrap(), fresh);
        let _ = old.send(());
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let listener = loop {
            match TcpListener::bind(self.ws_addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let task = tokio::spawn(accept_ws(listener, self.shared.clone()));
        *self.ws_task.lock().unwrap() = Some(task);
    }

    /// Sends `{"e":"serverShutdown"}` on every open connection, as spot does before a
    /// planned disconnect.
    pub fn announce_shutdown(&self) {
        let _ = self.shared.shutdown_notice.send(());
    }

    /// Stops sending stream data (the connection stays up and pings continue).
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// Withholds one stream's data (`None`: none), the rest flowing as before.
    pub fn set_silent_stream(&self, stream: Option<&str>) {
        *self.shared.silent_stream.lock().unwrap() = stream.map(String::from);
    }

    /// Closes every open connection with a close frame, as Binance does to each connection
    /// 24 h after it opened; the listener stays up.
    pub fn cut_all(&self) {
        let _ = self.shared.cut.send(());
    }

    pub fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.shared.settings.lock().unwrap()
    }

    pub fn set_rest_history_from(&self, id: u64) {
        *self.shared.rest_history_from.lock().unwrap() = id;
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().unwrap().clone()
    }
}

impl Drop for MockBinance {
    fn drop(&mut self) {
        self.stop();
        self.rest_task.abort();
        if let Some(f) = self.feeder.lock().unwrap().take() {
            f.abort();
        }
    }
}

async fn accept_ws(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(serve_ws(tcp, shared.clone()));
    }
}

/// Streams named in a `?streams=a/b` query.
fn query_streams(uri: &str) -> Vec<String> {
    uri.split_once("streams=")
        .map(|(_, s)| {
            s.split('&')
                .next()
                .unwrap_or("")
                .split('/')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

async fn serve_ws(tcp: TcpStream, shared: Arc<Shared>) {
    let mut path = String::new();
    // tungstenite's callback type: its error is the HTTP response itself.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = req.uri().to_string();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    shared.stats.lock().unwrap().connections += 1;
    let mut subscribed: BTreeSet<String> = query_streams(&path).into_iter().collect();
    let mut feed = shared.feed.subscribe();
    let mut kill = shared.kill.lock().unwrap().subscribe();
    let mut shutdown_notice = shared.shutdown_notice.subscribe();
    let mut cut = shared.cut.subscribe();
    let (limit, ping_every, pong_deadline, lifetime, malformed_every) = {
        let s = shared.settings.lock().unwrap();
        (
            s.message_limit,
            s.ping_interval,
            s.pong_deadline,
            s.lifetime,
            s.malformed_every,
        )
    };
    let opened = Instant::now();
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    let mut awaiting_pong: Option<(Vec<u8>, Instant)> = None;
    let mut window: VecDeque<Instant> = VecDeque::new();
    let mut played_here = 0usize;
    let cut_at = lifetime.map(|l| tokio::time::Instant::now() + l);
    loop {
        tokio::select! {
            _ = kill.recv() => return, // crash: no close frame
            Ok(()) = shutdown_notice.recv() => {
                let notice = json!({"e": "serverShutdown", "E": 1}).to_string();
                if ws.send(Message::text(notice)).await.is_err() {
                    return;
                }
            }
            Ok(()) = cut.recv() => {
                let _ = ws.close(None).await;
                return;
            }
            _ = async { tokio::time::sleep_until(cut_at.unwrap()).await }, if cut_at.is_some() => {
                let _ = ws.close(None).await;
                return;
            }
            incoming = ws.next() => {
                let Some(Ok(message)) = incoming else { return };
                let now = Instant::now();
                window.push_back(now);
                while window.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                    window.pop_front();
                }
                {
                    let mut st = shared.stats.lock().unwrap();
                    st.max_messages_per_second = st.max_messages_per_second.max(window.len());
                }
                if window.len() > limit {
                    shared.stats.lock().unwrap().rate_closes += 1;
                    let _ = ws.close(Some(CloseFrame { code: 1008.into(), reason: "Too many requests".into() })).await;
                    return;
                }
                match message {
                    Message::Pong(payload) => {
                        shared.stats.lock().unwrap().pongs += 1;
                        if awaiting_pong.as_ref().is_some_and(|(p, _)| *p == payload.to_vec()) {
                            awaiting_pong = None;
                        }
                    }
                    Message::Text(text) => {
                        let reply = control(&text, &mut subscribed, &shared);
                        if ws.send(Message::text(reply)).await.is_err() {
                            return;
                        }
                    }
                    Message::Close(_) => return,
                    _ => {}
                }
            }
            _ = ping.tick() => {
                if let Some((_, since)) = &awaiting_pong {
                    if since.elapsed() > pong_deadline {
                        let _ = ws.close(Some(CloseFrame { code: 1008.into(), reason: "Pong timeout".into() })).await;
                        return;
                    }
                } else {
                    let payload = format!("{}", opened.elapsed().as_millis()).into_bytes();
                    awaiting_pong = Some((payload.clone(), Instant::now()));
                    if ws.send(Message::Ping(payload.into())).await.is_err() {
                        return;
                    }
                }
            }
            index = feed.recv() => {
                let Ok(index) = index else { continue };
                if shared.silent.load(Ordering::SeqCst) {
                    continue;
                }
                let entry = &shared.tape.entries[index];
                if !subscribed.contains(&entry.stream) {
                    continue;
                }
                if shared.silent_stream.lock().unwrap().as_deref() == Some(entry.stream.as_str()) {
                    continue;
                }
                played_here += 1;
                if malformed_every.is_some_and(|n| played_here % n == 0) {
                    for junk in [
                        Message::text("{\"stream\":\"btcusdt@aggTrade\",\"data\":{\"e\":\"aggTrade\",\"p\":\"NaN\"}}"),
                        Message::text("not json at all"),
                        Message::text("{\"stream\":\"btcusdt@forceOrder\",\"data\":{}}"),
                        Message::binary(vec![0u8, 159, 146, 150]),
                    ] {
                        if ws.send(junk).await.is_err() {
                            return;
                        }
                    }
                }
                if ws.send(Message::text(entry.text.clone())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Answers one control message as Binance does.
fn control(text: &str, subscribed: &mut BTreeSet<String>, shared: &Shared) -> String {
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return json!({"code": 3, "msg": "Invalid JSON"}).to_string();
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let params: Vec<String> = request
        .get("params")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    match request.get("method").and_then(Value::as_str) {
        Some("SUBSCRIBE") => {
            subscribed.extend(params);
            let mut st = shared.stats.lock().unwrap();
            st.subscribe_requests += 1;
            st.last_subscriptions = subscribed.iter().cloned().collect();
            json!({"result": null, "id": id}).to_string()
        }
        Some("UNSUBSCRIBE") => {
            for p in params {
                subscribed.remove(&p);
            }
            let mut st = shared.stats.lock().unwrap();
            st.unsubscribe_requests += 1;
            st.last_subscriptions = subscribed.iter().cloned().collect();
            json!({"result": null, "id": id}).to_string()
        }
        Some("LIST_SUBSCRIPTIONS") => {
            json!({"result": subscribed.iter().collect::<Vec<_>>(), "id": id}).to_string()
        }
        _ => json!({"code": 2, "msg": "Invalid request", "id": id}).to_string(),
    }
}

async fn accept_rest(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(serve_rest(tcp, shared.clone()));
    }
}

/// Minimal HTTP/1.1: one GET per connection, answered with JSON and closed.
async fn serve_rest(mut tcp: TcpStream, shared: Arc<Shared>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    shared.stats.lock().unwrap().rest_requests += 1;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let q: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let (status, body) = match path {
        "/api/v3/aggTrades" | "/fapi/v1/aggTrades" => ("200 OK", rest_agg_trades(&shared, &q)),
        "/api/v3/klines" | "/fapi/v1/klines" => ("200 OK", rest_klines(&shared, &q)),
        _ => (
            "404 Not Found",
            json!({"code": -1, "msg": "not found"}).to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// The aggTrades of a symbol played so far, in id order.
fn played_aggs<'a>(shared: &'a Shared, symbol: &'a str) -> impl Iterator<Item = &'a AggTrade> + 'a {
    let played = shared.played.load(Ordering::SeqCst);
    shared.tape.entries[..played]
        .iter()
        .filter_map(move |e| e.agg.as_ref().filter(|(s, _)| s == symbol).map(|(_, t)| t))
}

fn rest_agg_trades(shared: &Shared, q: &HashMap<&str, &str>) -> String {
    let symbol = q.get("symbol").copied().unwrap_or("");
    let limit: usize = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
        .min(1000);
    let oldest = *shared.rest_history_from.lock().unwrap();
    let kept: Vec<&AggTrade> = played_aggs(shared, symbol)
        .filter(|t| t.id >= oldest)
        .collect();
    // With fromId: from that id on; without: the most recent `limit`, as Binance does.
    let start = match q.get("fromId").and_then(|v| v.parse::<u64>().ok()) {
        Some(from) => kept.iter().position(|t| t.id >= from).unwrap_or(kept.len()),
        None => kept.len().saturating_sub(limit),
    };
    let rows: Vec<Value> = kept[start..]
        .iter()
        .take(limit)
        .map(|t| {
            json!({"a": t.id, "p": t.price.to_string(), "q": t.quantity.to_string(), "f": t.first_trade_id,
                   "l": t.last_trade_id, "T": t.time_ms, "m": t.buyer_is_maker, "M": true})
        })
        .collect();
    Value::Array(rows).to_string()
}

fn rest_klines(shared: &Shared, q: &HashMap<&str, &str>) -> String {
    let symbol = q.get("symbol").copied().unwrap_or("");
    let interval: Interval = q
        .get("interval")
        .and_then(|v| v.parse().ok())
        .unwrap_or(Interval::M1);
    let start: i64 = q.get("startTime").and_then(|v| v.parse().ok()).unwrap_or(0);
    let end: i64 = q
        .get("endTime")
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MAX);
    let mut builder = KlineBuilder::new(interval).unwrap();
    let mut done = Vec::new();
    for t in played_aggs(shared, symbol) {
        if let Some(k) = builder.push_agg(t) {
            done.push(k);
        }
    }
    done.extend(builder.current().cloned());
    let rows: Vec<Value> = done
        .into_iter()
        .filter(|k| k.open_time_ms >= start && k.open_time_ms <= end)
        .map(|k| {
            json!([
                k.open_time_ms,
                k.open.to_string(),
                k.high.to_string(),
                k.low.to_string(),
                k.close.to_string(),
                k.volume.to_string(),
                k.close_time_ms,
                k.quote_volume.to_string(),
                k.trades,
                k.taker_buy_volume.to_string(),
                k.taker_buy_quote_volume.to_string(),
                "0"
            ])
        })
        .collect();
    Value::Array(rows).to_string()
}
