//! `GET /v1/journal/key` and `GET /v1/journal?from=SEQ&to=SEQ` on the client port: the
//! journal's public keys, and its signed history as JSON lines, as far as a token's scope
//! reaches (docs/verify.md).

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::Shared;
use super::authorize::bearer;
use super::filter::Filter;
use super::http::{self, Body};
use crate::auth::Scope;
use crate::hub::history::{History, HistoryError};

/// The public keys' path.
pub const KEY_PATH: &str = "/v1/journal/key";
/// The history's path.
pub const PATH: &str = "/v1/journal";
/// Most signals one answer holds (about 500 bytes each); `Sigcast-Next-From` says where
/// the next request starts when more were asked for.
pub const MAX_SIGNALS: usize = 1_024;
/// Most signals one answer looks at: a narrowly scoped token asking over a long range gets
/// what matched among these (maybe nothing) and `Sigcast-Next-From`, so no answer reads the
/// whole journal.
pub const MAX_SCANNED: usize = 32_768;

/// Answers `GET /v1/journal/key`: public, as public keys are.
pub fn key(shared: &Shared) -> Response<Body> {
    match shared.hub.public_keys() {
        Some(keys) => http::json(StatusCode::OK, &json!(*keys)),
        None => http::text(StatusCode::NOT_FOUND, "this server keeps no signed journal"),
    }
}

/// Answers `GET /v1/journal`: the journaled signals with `from <= seq <= to` (defaults: the
/// oldest and the newest) that the token's scope allows, one frame a line, as sent.
pub async fn serve<B>(request: &Request<B>, peer: SocketAddr, shared: &Shared) -> Response<Body> {
    let claims = match bearer(request, peer, shared) {
        Ok(claims) => claims,
        Err(refused) => return *refused,
    };
    let Some(history) = shared.hub.history() else {
        return http::text(StatusCode::NOT_FOUND, "this server keeps no journal");
    };
    let last = shared.hub.last_seq();
    let (from, to) = match range(request.uri().query().unwrap_or(""), last) {
        Ok(range) => range,
        Err(reason) => return http::text(StatusCode::BAD_REQUEST, &reason),
    };
    let filter = Filter::new(Scope::of(&claims));
    let (body, next) = match collect(&**history, &filter, from, to, MAX_SCANNED).await {
        Ok(collected) => collected,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "journal read failed");
            return http::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the journal could not be read",
            );
        }
    };
    let mut answer = http::answer(StatusCode::OK, "application/x-ndjson", Bytes::from(body));
    if let Some(next) = next {
        answer
            .headers_mut()
            .insert("sigcast-next-from", HeaderValue::from(next));
    }
    answer
}

/// The frames with `from <= seq <= to` that `filter` allows, one a line: at most
/// [`MAX_SIGNALS`] of them, looking at no more than about `max_scanned` signals; and where
/// the next answer starts when it stopped short.
async fn collect(
    history: &dyn History,
    filter: &Filter,
    from: u64,
    to: u64,
    max_scanned: usize,
) -> Result<(Vec<u8>, Option<u64>), HistoryError> {
    let (mut body, mut sent, mut after) = (Vec::new(), 0, from.saturating_sub(1));
    let mut scanned = 0;
    while after < to {
        if scanned >= max_scanned {
            return Ok((body, Some(after + 1)));
        }
        let (page, _) = history.read(after, to).await?;
        let Some(end) = page.last().map(|p| p.seq) else {
            break;
        };
        scanned += page.len();
        for published in page.iter().filter(|p| filter.allows(p)) {
            if sent == MAX_SIGNALS {
                return Ok((body, Some(published.seq)));
            }
            body.extend_from_slice(published.frame.as_bytes());
            body.push(b'\n');
            sent += 1;
        }
        after = end;
    }
    Ok((body, None))
}

/// `from` and `to` from a query, within `1..=last`.
fn range(query: &str, last: u64) -> Result<(u64, u64), String> {
    let (mut from, mut to) = (1, last);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{name}: expected a seq (a whole number), got {value:?}"))
        };
        match name {
            "from" => from = number()?.max(1),
            "to" => to = number()?.min(last),
            _ => return Err(format!("unknown parameter {name:?}: expected from and to")),
        }
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::hub::Published;
    use crate::hub::journal::{PAGE, Page};

    /// `n` signals, every tenth on ETHUSDT, read a page at a time as the journal is.
    struct Tape(Vec<Published>);

    impl Tape {
        fn new(n: u64) -> Tape {
            Tape(
                (1..=n)
                    .map(|seq| Published {
                        seq,
                        symbol: if seq % 10 == 0 { "ETHUSDT" } else { "BTCUSDT" }.into(),
                        strategy: Arc::from("s"),
                        frame: format!("{{\"seq\":{seq}}}").into(),
                        at: std::time::Instant::now(),
                        offered: std::time::Instant::now(),
                    })
                    .collect(),
            )
        }
    }

    impl History for Tape {
        fn read(&self, after: u64, upto: u64) -> BoxFuture<'_, Result<Page, HistoryError>> {
            let page: Vec<Published> = self
                .0
                .iter()
                .filter(|p| p.seq > after && p.seq <= upto)
                .take(PAGE)
                .cloned()
                .collect();
            Box::pin(async move { Ok((page, Some(1))) })
        }

        fn wait_readable(&self, _: u64) -> BoxFuture<'_, Result<(), HistoryError>> {
            Box::pin(async { Ok(()) })
        }
    }

    fn seqs(body: &[u8]) -> Vec<u64> {
        String::from_utf8_lossy(body)
            .lines()
            .map(|l| l[7..l.len() - 1].parse().unwrap())
            .collect()
    }

    /// An answer stops at `MAX_SIGNALS` frames, or once it has looked at its share of the
    /// journal, and says where to go on; a narrowly scoped token pages through a long range
    /// without any one answer reading it all.
    #[tokio::test]
    async fn answers_are_paged_by_what_they_send_and_what_they_read() {
        let tape = Tape::new(5_000);
        let everything = Filter::new(Scope::default());
        let (body, next) = collect(&tape, &everything, 1, 5_000, MAX_SCANNED)
            .await
            .unwrap();
        assert_eq!(seqs(&body), (1..=MAX_SIGNALS as u64).collect::<Vec<_>>());
        assert_eq!(next, Some(MAX_SIGNALS as u64 + 1));

        let eth = Filter::new(Scope {
            symbols: Some(vec!["ETHUSDT".into()]),
            ..Scope::default()
        });
        let (body, next) = collect(&tape, &eth, 1, 5_000, 2 * PAGE).await.unwrap();
        assert_eq!(seqs(&body), (1..=102).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(next, Some(2 * PAGE as u64 + 1), "stopped after two pages");
        let (body, next) = collect(&tape, &eth, 4_097, 5_000, 2 * PAGE).await.unwrap();
        assert_eq!(seqs(&body).len(), 91);
        assert_eq!(next, None, "the range's end: nothing more");
    }

    #[test]
    fn a_range_defaults_to_everything_and_is_checked() {
        assert_eq!(range("", 9), Ok((1, 9)));
        assert_eq!(range("from=3&to=5", 9), Ok((3, 5)));
        assert_eq!(range("from=0&to=99", 9), Ok((1, 9)));
        assert_eq!(range("from=7&to=2", 9), Ok((7, 2)), "empty, not an error");
        assert!(range("from=x", 9).unwrap_err().contains("from"));
        assert!(range("limit=3", 9).unwrap_err().contains("limit"));
    }
}
