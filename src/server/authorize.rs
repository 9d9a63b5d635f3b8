//! Who may open a session: the handshake's authorization, a pure function of the request.

use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::Shared;
use super::http::{self, Body};
use crate::auth::{AuthError, Claims, Identity, bearer_token, protocol_offer};

/// The header a reconnecting client names its last seen `seq` in.
pub const LAST_SEQ_HEADER: &str = "x-sigcast-last-seq";

/// What the handshake decided, kept for the log line and the counters after it.
#[derive(Debug)]
pub enum Verdict {
    /// Upgrade: the token's claims, the `seq` to resume after, and the subprotocol to answer
    /// with (a browser that offered one).
    Accepted {
        claims: Claims,
        last_seq: Option<u64>,
        protocol: Option<&'static str>,
    },
    /// 401, with who the token was issued to when its signature is good.
    Refused(AuthError, Option<Identity>),
    /// 400: a malformed header of sigcast's own.
    BadRequest(String),
    /// 403: a browser session from an origin `server.allowed_origins` does not allow.
    BadOrigin(String),
    /// 503: the server is at `server.max_connections`.
    OverLimit,
}

/// Reads the request's credentials: the bearer token (`Authorization`, or for a browser the
/// `bearer.<JWT>` subprotocol from an allowed origin), checked against the key ring and the
/// revocations; then the resume header. `Authorization` wins when both are given.
pub fn authorize<B>(request: &Request<B>, shared: &Shared) -> Verdict {
    let headers = request.headers();
    let authorization = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes());
    let protocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .map(|v| v.as_bytes());
    let offer = protocol_offer(protocols);
    let token = match (headers.contains_key(header::AUTHORIZATION), offer.token) {
        (false, Some(from_protocol)) => {
            if let Err(reason) = origin_allowed(request, &shared.settings.allowed_origins) {
                return Verdict::BadOrigin(reason);
            }
            from_protocol
        }
        _ => bearer_token(authorization),
    };
    let mut identity = None;
    let verified = token
        .and_then(|token| {
            let keys = shared.keys.current();
            keys.verify(token).inspect_err(|e| {
                identity = keys.identify(token, e);
            })
        })
        .and_then(|claims| {
            if shared.revoked.borrow().covers(&claims) {
                identity = Some(Identity {
                    sub: claims.sub,
                    jti: claims.jti,
                });
                Err(AuthError::Invalid(crate::auth::REVOKED.into()))
            } else {
                Ok(claims)
            }
        });
    match verified {
        Ok(claims) => match last_seq(request) {
            Ok(last_seq) => Verdict::Accepted {
                claims,
                last_seq,
                protocol: offer.answer,
            },
            Err(reason) => Verdict::BadRequest(reason),
        },
        Err(e) => Verdict::Refused(e, identity),
    }
}

/// A bearer token checked against the key ring and the revocations: what the publish and
/// performance endpoints accept (the upgrade also names whom a refused token was issued to).
pub fn verified(token: &str, shared: &Shared) -> Result<Claims, AuthError> {
    let claims = shared.keys.current().verify(token)?;
    if shared.revoked.borrow().covers(&claims) {
        return Err(AuthError::Invalid(crate::auth::REVOKED.into()));
    }
    Ok(claims)
}

/// The claims of a request's `Authorization: Bearer` token, or the 401 to answer (JSON, as
/// the API endpoints answer): what `/v1/performance` and `/v1/journal` check.
pub fn bearer<B>(
    request: &Request<B>,
    peer: std::net::SocketAddr,
    shared: &Shared,
) -> Result<Claims, Box<Response<Body>>> {
    let headers = request.headers().get_all(header::AUTHORIZATION);
    bearer_token(headers.iter().map(|v| v.as_bytes()))
        .and_then(|token| verified(token, shared))
        .map_err(|reason| {
            tracing::info!(%peer, path = request.uri().path(), %reason, "request refused: 401");
            let mut answer = http::json(
                StatusCode::UNAUTHORIZED,
                &serde_json::json!({"type": "error", "error_code": "unauthorized", "error_message": reason.to_string()}),
            );
            answer.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sigcast\""),
            );
            Box::new(answer)
        })
}

impl Verdict {
    /// The HTTP answer: the `upgrade` (with the subprotocol when one was offered), or the
    /// refusal with its status, reason and headers.
    pub fn answer(&self, mut upgrade: Response<Body>) -> Response<Body> {
        match self {
            Verdict::Accepted { protocol, .. } => {
                if let Some(answer) = protocol {
                    upgrade.headers_mut().insert(
                        header::SEC_WEBSOCKET_PROTOCOL,
                        HeaderValue::from_static(answer),
                    );
                }
                upgrade
            }
            Verdict::Refused(e, _) => unauthorized(e),
            Verdict::BadRequest(reason) => http::text(StatusCode::BAD_REQUEST, reason),
            Verdict::BadOrigin(reason) => http::text(StatusCode::FORBIDDEN, reason),
            Verdict::OverLimit => http::retry_after(
                http::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server at connection limit, retry later",
                ),
                1,
            ),
        }
    }
}

/// The `X-Sigcast-Last-Seq` header, when given.
fn last_seq<B>(request: &Request<B>) -> Result<Option<u64>, String> {
    let Some(value) = request.headers().get(LAST_SEQ_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| "X-Sigcast-Last-Seq: expected the last seq received, a whole number".into())
}

/// 401 with the `WWW-Authenticate` challenge of RFC 6750 and a short plain-text reason.
fn unauthorized(error: &AuthError) -> Response<Body> {
    let challenge = match error {
        AuthError::Missing => "Bearer realm=\"sigcast\"".to_string(),
        AuthError::Invalid(reason) => format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            reason.replace(['"', '\\'], "'")
        ),
    };
    let mut response = http::text(StatusCode::UNAUTHORIZED, &error.to_string());
    if let Ok(challenge) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// Whether a browser session's `Origin` may connect: listed in `server.allowed_origins`
/// (`*`: any), or, while the list is empty, the page's own origin (`https://` and the same
/// host and port as the request's `Host`), i.e. the dashboard sigcast serves itself.
fn origin_allowed<B>(request: &Request<B>, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return Err("a browser session needs an Origin header".into());
    };
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    if allowed.is_empty() {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if origin
            .strip_prefix("https://")
            .is_some_and(|h| !host.is_empty() && h.eq_ignore_ascii_case(host))
        {
            return Ok(());
        }
    }
    Err(format!(
        "origin {origin:?} is not allowed (server.allowed_origins)"
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::auth::registry::Revoked;
    use crate::auth::{KeyRing, Keys};
    use crate::config::{AuthSettings, ServerSettings};
    use crate::hub::Hub;

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

    /// What every case's server shares: an HS256 key ring, a development certificate, the
    /// given allowed origins, and `revoked-jti` and subject `gone` revoked.
    fn shared(dir: &std::path::Path, allowed_origins: &[&str]) -> Shared {
        let secret = dir.join("jwt.secret");
        std::fs::write(&secret, SECRET).unwrap();
        let cert = crate::devcert::generate().unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.cert_pem).unwrap();
        std::fs::write(&key_path, cert.key_pem).unwrap();
        let auth = AuthSettings {
            jwt_secret_file: Some(secret),
            ..AuthSettings::default()
        };
        let (tls, certificates) =
            crate::tls::reloadable_server_config(Some(&cert_path), Some(&key_path)).unwrap();
        let revoked = Revoked {
            jtis: HashSet::from(["revoked-jti".to_string()]),
            subs: HashMap::from([("gone".to_string(), crate::clock::unix_now())]),
        };
        let (_tx, revoked) = tokio::sync::watch::channel(Arc::new(revoked));
        Shared {
            tls,
            keys: Keys::new(KeyRing::from_settings(&auth).unwrap()),
            certificates,
            hub: Arc::new(Hub::new(Vec::new(), 16)),
            settings: ServerSettings {
                allowed_origins: allowed_origins.iter().map(|o| o.to_string()).collect(),
                ..ServerSettings::default()
            },
            revoked,
            stats: Default::default(),
            max_market_topics: 8,
        }
    }

    fn token(shared: &Shared, sub: &str, jti: &str) -> String {
        let ring = shared.keys.current();
        ring.issue(sub, Duration::from_secs(600), Some(jti.into()))
            .unwrap()
    }

    /// A token signed with the right key whose `exp` has passed.
    fn expired(shared: &Shared) -> String {
        let now = crate::clock::unix_now();
        let claims = serde_json::json!({
            "sub": "late", "jti": "late-1", "iss": "sigcast", "aud": "sigcast-clients",
            "iat": now - 600, "exp": now - 60,
        });
        let _ = shared;
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn request(headers: &[(&str, String)]) -> Request<()> {
        let mut builder = Request::builder()
            .uri("/")
            .header(header::HOST, "127.0.0.1:8443");
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder.body(()).unwrap()
    }

    /// What a verdict is, in a word, with the status it answers and who it accepted.
    fn outcome(verdict: &Verdict) -> (u16, String) {
        let mut upgrade = Response::new(Body::default());
        *upgrade.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let status = verdict.answer(upgrade).status().as_u16();
        let detail = match verdict {
            Verdict::Accepted {
                claims,
                last_seq,
                protocol,
            } => format!("{} after {last_seq:?} protocol {protocol:?}", claims.sub),
            Verdict::Refused(e, who) => {
                format!("{e} ({})", who.as_ref().map_or("?", |w| w.sub.as_str()))
            }
            Verdict::BadRequest(reason) | Verdict::BadOrigin(reason) => reason.clone(),
            Verdict::OverLimit => "over limit".into(),
        };
        (status, detail)
    }

    #[test]
    fn every_way_in_and_every_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let open = shared(dir.path(), &[]);
        let good = token(&open, "alice", "a-1");
        let bearer = |t: &str| ("authorization", format!("Bearer {t}"));
        let browser = |t: &str| ("sec-websocket-protocol", format!("sigcast.v1, bearer.{t}"));
        let origin = |o: &str| ("origin", o.to_string());
        // (case, request headers, status answered, what the verdict says)
        type Case<'a> = (&'a str, Vec<(&'a str, String)>, u16, &'a str);
        let cases: Vec<Case> = vec![
            (
                "bearer token",
                vec![bearer(&good)],
                101,
                "alice after None protocol None",
            ),
            (
                "bearer and resume",
                vec![bearer(&good), ("x-sigcast-last-seq", " 41 ".into())],
                101,
                "alice after Some(41)",
            ),
            (
                "resume header not a number",
                vec![bearer(&good), ("x-sigcast-last-seq", "forty".into())],
                400,
                "X-Sigcast-Last-Seq: expected",
            ),
            ("no token", vec![], 401, "missing"),
            (
                "not bearer",
                vec![("authorization", format!("Basic {good}"))],
                401,
                "?",
            ),
            (
                "two Authorization headers",
                vec![bearer(&good), bearer(&good)],
                401,
                "more than one Authorization header",
            ),
            ("garbage token", vec![bearer("not.a.jwt")], 401, "?"),
            ("expired token", vec![bearer(&expired(&open))], 401, "late"),
            (
                "revoked token id",
                vec![bearer(&token(&open, "bob", "revoked-jti"))],
                401,
                "token revoked (bob)",
            ),
            (
                "revoked subject",
                vec![bearer(&token(&open, "gone", "g-1"))],
                401,
                "token revoked (gone)",
            ),
            (
                "browser from the dashboard's own origin",
                vec![browser(&good), origin("https://127.0.0.1:8443")],
                101,
                "alice after None protocol Some(\"sigcast.v1\")",
            ),
            (
                "browser from another origin",
                vec![browser(&good), origin("https://evil.example")],
                403,
                "origin \"https://evil.example\" is not allowed",
            ),
            (
                "browser without an Origin",
                vec![browser(&good)],
                403,
                "needs an Origin header",
            ),
            (
                "Authorization wins over the subprotocol, whatever the origin",
                vec![
                    bearer(&good),
                    browser("junk"),
                    origin("https://evil.example"),
                ],
                101,
                "alice",
            ),
        ];
        for (name, headers, status, detail) in cases {
            let (got_status, got_detail) = outcome(&authorize(&request(&headers), &open));
            assert_eq!(got_status, status, "{name}: {got_detail}");
            assert!(
                got_detail.contains(detail),
                "{name}: {got_detail:?} lacks {detail:?}"
            );
        }
    }

    #[test]
    fn listed_origins_replace_the_dashboards_own() {
        let dir = tempfile::tempdir().unwrap();
        let listed = shared(dir.path(), &["https://app.example/"]);
        let good = token(&listed, "alice", "a-1");
        let offer = (
            "sec-websocket-protocol",
            format!("sigcast.v1, bearer.{good}"),
        );
        for (from, status) in [
            ("https://app.example", 101),
            ("https://APP.example/", 101),
            ("https://127.0.0.1:8443", 403),
        ] {
            let headers = [offer.clone(), ("origin", from.to_string())];
            let (got, detail) = outcome(&authorize(&request(&headers), &listed));
            assert_eq!(got, status, "{from}: {detail}");
        }
    }

    #[test]
    fn refusals_carry_their_headers() {
        let missing = Verdict::Refused(AuthError::Missing, None).answer(Response::default());
        assert_eq!(
            missing.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"sigcast\""
        );
        let invalid = Verdict::Refused(AuthError::Invalid("bad \"sig\"".into()), None)
            .answer(Response::default());
        assert_eq!(
            invalid.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"bad 'sig'\""
        );
        let busy = Verdict::OverLimit.answer(Response::default());
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");
    }
}
