//! Where a command's settings come from: a file, `SIGCAST_*` variables and flags.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::{self, Config, Overrides};

/// Where settings come from: a file, `SIGCAST_*` variables and these flags (which win).
#[derive(Debug, Args, Clone, Default)]
pub struct SettingsArgs {
    /// Config file; defaults to ./sigcast.toml when it exists.
    #[arg(long, env = "SIGCAST_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// HS256 secret file (auth.jwt_secret_file).
    #[arg(long, value_name = "PATH")]
    jwt_secret_file: Option<String>,
    /// Ed25519 public key PEM for EdDSA tokens (auth.jwt_public_key).
    #[arg(long, value_name = "PATH")]
    jwt_public_key: Option<String>,
    /// Set any key, e.g. --set server.max_connections=500 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl SettingsArgs {
    fn overrides(&self) -> anyhow::Result<Overrides> {
        let mut o = Overrides::default();
        for text in &self.set {
            o.parse_assignment(text)?;
        }
        if let Some(v) = &self.jwt_secret_file {
            o.set("auth.jwt_secret_file", v);
        }
        if let Some(v) = &self.jwt_public_key {
            o.set("auth.jwt_public_key", v);
        }
        Ok(o)
    }

    pub fn load(&self, extra: Overrides) -> anyhow::Result<Config> {
        let mut o = self.overrides()?;
        o.values.extend(extra.values);
        Ok(Config::load(self.file(), &config::process_env(), &o)?)
    }

    /// The config file: --config, else ./sigcast.toml when it exists.
    fn file(&self) -> Option<&Path> {
        let default_file = Path::new("sigcast.toml");
        match &self.config {
            Some(f) => Some(f.as_path()),
            None if default_file.exists() => Some(default_file),
            None => None,
        }
    }

    /// Every problem of the configuration (`file` instead of the usual one when given) and
    /// of what it points at, one line each.
    pub fn problems(&self, file: Option<&Path>) -> Vec<String> {
        let mut o = Overrides::default();
        let mut problems = Vec::new();
        for text in &self.set {
            if let Err(e) = o.parse_assignment(text) {
                problems.push(e.to_string());
            }
        }
        if let Some(v) = &self.jwt_secret_file {
            o.set("auth.jwt_secret_file", v);
        }
        if let Some(v) = &self.jwt_public_key {
            o.set("auth.jwt_public_key", v);
        }
        let file = file.or(self.file());
        let (config, found) = Config::load_checked(file, &config::process_env(), &o);
        problems.extend(found.iter().map(ToString::to_string));
        if let Some(config) = config {
            problems.extend(crate::node::problems(&config));
        }
        problems
    }
}
