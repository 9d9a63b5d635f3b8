//! `sigcast token issue|verify`: the same key ring the server uses.

use std::process::ExitCode;
use std::time::Duration;

use crate::auth::{KeyRing, Scope};
use crate::config::Config;

/// A signed token for `sub`, valid for `ttl`.
pub fn issue(
    config: &Config,
    sub: &str,
    ttl: Duration,
    jti: Option<String>,
    scope: &Scope,
) -> anyhow::Result<String> {
    if sub.trim().is_empty() {
        anyhow::bail!("--sub must not be empty");
    }
    if ttl.is_zero() {
        anyhow::bail!("--ttl must be greater than zero");
    }
    let ring = KeyRing::from_settings(&config.auth)?;
    for (flag, list) in [
        ("--symbols", &scope.symbols),
        ("--strategies", &scope.strategies),
    ] {
        if list
            .as_ref()
            .is_some_and(|l| l.is_empty() || l.iter().any(|s| s.trim().is_empty()))
        {
            anyhow::bail!("{flag}: name at least one, comma-separated, none empty");
        }
    }
    Ok(ring.issue_scoped(sub, ttl, jti, scope)?)
}

/// Prints the claims and exits 0 when the server would accept `token`; else says why, exit 1.
pub fn verify(config: &Config, token: &str) -> anyhow::Result<ExitCode> {
    let ring = KeyRing::from_settings(&config.auth)?;
    match ring.verify(token.trim()) {
        Ok(claims) => {
            println!("{}", serde_json::to_string_pretty(&claims)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!("sigcast: token rejected: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}
