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

/// The public keys' path.
pub const KEY_PATH: &str = "/v1/journal/key";
/// The history's path.
pub const PATH: &str = "/v1/journal";
/// Most signals one answer holds (about 500 bytes each); `Sigcast-Next-From` says where
/// the next request starts when more were asked for.
pub const MAX_SIGNALS: usize = 1_024;

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
    let (mut body, mut sent, mut after) = (Vec::new(), 0, from.saturating_sub(1));
    let mut next = None;
    while after < to {
        let page = match history.read(after, to).await {
            Ok((page, _)) => page,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "journal read failed");
                return http::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the journal could not be read",
                );
            }
        };
        let Some(end) = page.last().map(|p| p.seq) else {
            break;
        };
        for published in page.iter().filter(|p| filter.allows(p)) {
            if sent == MAX_SIGNALS {
                next = Some(published.seq);
                break;
            }
            body.extend_from_slice(published.frame.as_bytes());
            body.push(b'\n');
            sent += 1;
        }
        if next.is_some() {
            break;
        }
        after = end;
    }
    let mut answer = http::answer(StatusCode::OK, "application/x-ndjson", Bytes::from(body));
    if let Some(next) = next {
        answer
            .headers_mut()
            .insert("sigcast-next-from", HeaderValue::from(next));
    }
    answer
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
    use super::range;

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
