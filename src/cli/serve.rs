//! `sigcast serve`: the settings, the listener, TLS and source shortcuts, then the node.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::settings::SettingsArgs;
use crate::config::{Config, Overrides};

/// `serve`'s flags: the settings plus the listener, TLS and source shortcuts.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    settings: SettingsArgs,
    /// Listen address (server.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Certificate chain PEM (tls.cert).
    #[arg(long, value_name = "PATH")]
    tls_cert: Option<String>,
    /// Private key PEM (tls.key).
    #[arg(long, value_name = "PATH")]
    tls_key: Option<String>,
    /// Market source: `synthetic`, `binance` (live), or `replay:PATH[,PATH...]` to play
    /// recordings (source.kind, source.replay).
    #[arg(long, value_name = "SOURCE")]
    source: Option<String>,
    /// Cluster role: `single` (the default, no NATS), `producer` or `edge` (cluster.role).
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// NATS server URLs for cluster mode, comma-separated (cluster.nats).
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
}

impl ServeArgs {
    fn load(&self) -> anyhow::Result<Config> {
        let mut o = Overrides::default();
        if let Some(v) = &self.listen {
            o.set("server.listen", v);
        }
        if let Some(v) = &self.tls_cert {
            o.set("tls.cert", v);
        }
        if let Some(v) = &self.tls_key {
            o.set("tls.key", v);
        }
        if let Some(v) = &self.role {
            o.set("cluster.role", v);
        }
        if let Some(v) = &self.nats {
            o.set("cluster.nats", v);
        }
        match self.source.as_deref() {
            None => {}
            Some("synthetic") => o.set("source.kind", "synthetic"),
            Some("binance") => o.set("source.kind", "binance"),
            Some(spec) => match spec.strip_prefix("replay:") {
                Some(paths) if !paths.trim().is_empty() => {
                    o.set("source.kind", "replay");
                    o.set("source.replay", paths);
                }
                _ => anyhow::bail!(
                    "--source: expected `synthetic`, `binance` or `replay:PATH[,PATH...]`, got {spec:?}"
                ),
            },
        }
        self.settings.load(o)
    }
}

/// Runs the node until SIGINT or SIGTERM; SIGHUP reads the configuration again (file, env,
/// flags) for the keys it names.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.load()?;
    let _logging = crate::logging::init(&config);
    let reread: crate::node::Reread = Arc::new(move || args.load());
    super::runtime_with(config.server.worker_threads)?
        .block_on(crate::node::serve(config, reread))?;
    Ok(ExitCode::SUCCESS)
}
