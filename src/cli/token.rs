//! `sigcast token issue|verify|list|revoke`: the same key ring and registry the server uses:
//! the data directory's database, or in cluster mode (`cluster.nats` set) the cluster's
//! tokens bucket, which every node watches.

use std::process::ExitCode;
use std::time::Duration;

use async_nats::jetstream::kv;
use clap::Subcommand;

use super::settings::SettingsArgs;
use crate::config::Overrides;

use crate::auth::registry::{Registry, Revoked, TokenRecord};
use crate::auth::{KeyRing, Scope};
use crate::clock::unix_now;
use crate::cluster::{Cluster, tokens};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new token for SUB on stdout, signed with the configured primary key.
    Issue {
        /// Subject: who the token is for (shown in server logs).
        #[arg(long)]
        sub: String,
        /// Lifetime, e.g. 30d, 12h, 15m.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// Token id; random when omitted.
        #[arg(long)]
        jti: Option<String>,
        /// Scope: only signals for these symbols (comma-separated); all when omitted.
        #[arg(long, value_delimiter = ',', value_name = "SYMBOLS")]
        symbols: Option<Vec<String>>,
        /// Scope: only signals from these strategies (comma-separated); all when omitted.
        #[arg(long, value_delimiter = ',', value_name = "NAMES")]
        strategies: Option<Vec<String>>,
        /// A publisher token: it may publish signals (`{"type":"publish",...}`).
        #[arg(long)]
        publisher: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List the tokens issued here: active, expired and revoked.
    List {
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Revoke a token by id, or every token of a subject; running servers refuse it and
    /// close its sessions (1008 "token revoked") within 2 seconds.
    Revoke {
        /// The token id (`jti`) to revoke.
        jti: Option<String>,
        /// Revoke every token issued to this subject until now.
        #[arg(long, value_name = "NAME")]
        sub: Option<String>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Print a token's claims as JSON and exit 0 if the server would accept it.
    Verify {
        token: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

pub fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Issue {
            sub,
            ttl,
            jti,
            symbols,
            strategies,
            publisher,
            settings,
        } => {
            let config = settings.load(Overrides::default())?;
            let scope = Scope {
                symbols,
                strategies,
                publisher,
            };
            println!("{}", issue(&config, &sub, ttl, jti, &scope)?);
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { settings } => {
            list(&settings.load(Overrides::default())?)?;
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { jti, sub, settings } => {
            let config = settings.load(Overrides::default())?;
            revoke(&config, jti.as_deref(), sub.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Verify { token, settings } => {
            let config = settings.load(Overrides::default())?;
            verify(&config, &token)
        }
    }
}

/// In cluster mode, runs `work` on the cluster's tokens bucket.
fn in_cluster<T>(
    config: &Config,
    work: impl AsyncFnOnce(&kv::Store) -> Result<T, String>,
) -> Option<anyhow::Result<T>> {
    if config.cluster.nats.trim().is_empty() {
        return None;
    }
    let run = async {
        let cluster = Cluster::join(&config.cluster).await?;
        let bucket = tokens::bucket(&cluster).await?;
        work(&bucket)
            .await
            .map_err(|e| anyhow::anyhow!("cluster tokens bucket: {e}"))
    };
    Some(super::runtime().and_then(|rt| rt.block_on(run)))
}

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
    let token = ring.issue_scoped(sub, ttl, jti, scope)?;
    // Recorded (never the token itself) so it can be listed and revoked.
    let claims = ring
        .verify(&token)
        .map_err(|e| anyhow::anyhow!("the new token does not verify: {e}"))?;
    match in_cluster(config, async |bucket| tokens::record(bucket, &claims).await) {
        Some(recorded) => recorded?,
        None => Registry::open(&config.data.journal_path())?.record(&claims)?,
    }
    Ok(token)
}

/// Prints every recorded token: id, subject, state, scope, issue and expiry times.
pub fn list(config: &Config) -> anyhow::Result<()> {
    let records: Vec<TokenRecord> = match in_cluster(config, async |b| tokens::list(b).await) {
        Some(records) => records?,
        None => Registry::open(&config.data.journal_path())?.list()?,
    };
    let now = unix_now();
    let time = |t: u64| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t))
            .to_string()
    };
    let mut rows = vec![["jti", "sub", "state", "issued", "expires", "scope"].map(String::from)];
    for t in records {
        let scope = [
            t.symbols.as_ref().map(|s| format!("symbols={s}")),
            t.strategies.as_ref().map(|s| format!("strategies={s}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        rows.push([
            t.jti.clone(),
            t.sub.clone(),
            t.state(now).to_string(),
            time(t.issued_at),
            time(t.expires_at),
            if scope.is_empty() {
                "all".into()
            } else {
                scope
            },
        ]);
    }
    let out = columns(&rows);
    super::emit(&out)
}

/// Rows as left-aligned columns two spaces apart, each as wide as its widest cell (ids and
/// subjects have no fixed length); the last column is not padded.
fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| match i + 1 == N {
                true => cell.clone(),
                false => format!("{cell:<w$}"),
            })
            .collect();
        out.push_str(&cells.join("  "));
        out.push('\n');
    }
    out
}

/// The revocations the server would apply: the cluster's, or the data directory's (none when
/// the server has not made its database yet).
fn revocations(config: &Config) -> anyhow::Result<Revoked> {
    if let Some(revoked) = in_cluster(config, async |bucket| tokens::revoked(bucket).await) {
        return revoked;
    }
    let path = config.data.journal_path();
    if !path.exists() {
        return Ok(Revoked::default());
    }
    Ok(Registry::open(&path)?.revoked()?)
}

/// Revokes a token by id, or every token of a subject; running servers act within 2 s.
pub fn revoke(config: &Config, jti: Option<&str>, sub: Option<&str>) -> anyhow::Result<()> {
    let now = unix_now();
    let revoked = in_cluster(config, async |bucket| match (jti, sub) {
        (Some(jti), None) => {
            let known = tokens::known(bucket, jti).await;
            tokens::revoke_token(bucket, jti, now).await?;
            Ok(format!(
                "revoked token {jti} in the cluster{}",
                if known {
                    ""
                } else {
                    " (not issued here; blocked anyway)"
                }
            ))
        }
        (None, Some(sub)) => {
            tokens::revoke_subject(bucket, sub, now).await?;
            Ok(format!(
                "revoked every token of {sub} issued until now, and for {}s after, in the cluster",
                crate::auth::MAX_LEEWAY.as_secs()
            ))
        }
        _ => Err("name a token id (JTI) or --sub NAME, not both".into()),
    });
    if let Some(said) = revoked {
        println!("{}", said?);
        return Ok(());
    }
    let registry = Registry::open(&config.data.journal_path())?;
    match (jti, sub) {
        (Some(jti), None) => {
            let known = registry.revoke_jti(jti)?;
            println!(
                "revoked token {jti}{}",
                if known {
                    ""
                } else {
                    " (not issued here; blocked anyway)"
                }
            );
        }
        (None, Some(sub)) => {
            let n = registry.revoke_sub(sub)?;
            println!(
                "revoked every token of {sub} issued until now, and for {}s after ({n} recorded)",
                crate::auth::MAX_LEEWAY.as_secs()
            );
        }
        _ => anyhow::bail!("name a token id (JTI) or --sub NAME, not both"),
    }
    Ok(())
}

/// Prints the claims and exits 0 when the server would accept `token`; else says why, exit 1.
/// A revoked token is refused as the server refuses it: the revocations are read where the
/// server reads them (the cluster's bucket, or the data directory's registry).
pub fn verify(config: &Config, token: &str) -> anyhow::Result<ExitCode> {
    let ring = KeyRing::from_settings(&config.auth)?;
    let verified = ring.verify(token.trim()).and_then(|claims| {
        let revoked = revocations(config).map_err(|e| {
            crate::auth::AuthError::Invalid(format!("cannot read revocations: {e:#}"))
        })?;
        if revoked.covers(&claims) {
            return Err(crate::auth::AuthError::Invalid(crate::auth::REVOKED.into()));
        }
        Ok(claims)
    });
    match verified {
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

#[cfg(test)]
mod tests {
    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = [
            ["jti", "sub", "scope"].map(String::from),
            ["913c4c2b930007b347dcc4a0e8a52d8c", "a", "all"].map(String::from),
            ["x", "a-much-longer-subject-name", "symbols=BTCUSDT"].map(String::from),
        ];
        let text = super::columns(&rows);
        let lines: Vec<&str> = text.lines().collect();
        let (sub, scope) = (
            lines[0].find("sub").unwrap(),
            lines[0].find("scope").unwrap(),
        );
        assert!(lines[1][sub..].starts_with("a  "), "{text}");
        assert!(
            lines[2][sub..].starts_with("a-much-longer-subject-name  "),
            "{text}"
        );
        assert_eq!(&lines[1][scope..], "all", "{text}");
        assert_eq!(&lines[2][scope..], "symbols=BTCUSDT", "{text}");
        assert!(!lines[0].ends_with(' '));
    }
}
