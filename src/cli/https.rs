//! `GET` on a running server over HTTPS, as the commands that ask one (`journal`,
//! `performance`, `verify --url`) send it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// What a server answered.
pub struct Answer {
    pub body: String,
    /// `Sigcast-Next-From`: a paged answer (`GET /v1/journal`) says where the next page
    /// starts.
    pub next_from: Option<u64>,
}

/// A server's journal keys (`GET /v1/journal/key`, public), as JSON text.
pub fn journal_keys(url: &str, ca: Option<&PathBuf>) -> anyhow::Result<String> {
    let answer =
        super::runtime()?.block_on(get(url, crate::server::journal::KEY_PATH, None, ca))?;
    Ok(answer.body)
}

/// `GET <url><path>` (with a bearer `token` when given), trusting `ca` if given; a status
/// other than 2xx is an error naming it.
pub async fn get(
    url: &str,
    path: &str,
    token: Option<&str>,
    ca: Option<&PathBuf>,
) -> anyhow::Result<Answer> {
    let tls = crate::client::tls_config(ca).map_err(anyhow::Error::msg)?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .context("cannot make an HTTP client")?;
    let target = format!("{}{path}", url.trim_end_matches('/'));
    let mut request = http.get(&target);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    let status = response.status();
    let next_from = response
        .headers()
        .get("sigcast-next-from")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = response.text().await.context("the answer broke off")?;
    if !status.is_success() {
        bail!("{target}: {status}: {}", body.trim());
    }
    Ok(Answer { body, next_from })
}
