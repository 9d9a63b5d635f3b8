//! Layered settings: built-in defaults, then the TOML file, then `SIGCAST_*` environment, then flags.
//!
//! Every key has a dotted name (`server.max_connections`), an environment variable made from it
//! (`SIGCAST_SERVER_MAX_CONNECTIONS`) and can be set with `--set server.max_connections=500`.
//! [`KEYS`] is the one list of them: overrides, `README.md` and `config show` all follow it.
//!
//! The keys are in `keys`, the sections they set in `settings`, and the checks across keys
//! in `checks`.

mod checks;
mod keys;
pub mod ledger;
mod settings;
mod speed;
mod toml_error;

pub use keys::{KEYS, Key, Kind, Overrides, key, reference};
pub use ledger::{LedgerSettings, Positions};
pub use settings::*;
pub use speed::Speed;
pub use toml_error::toml_error;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a configuration could not be loaded; every message names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// One setting's value, from a file, an environment variable or a flag.
    #[error("{origin}: {key}: {message}")]
    Setting {
        origin: String,
        key: String,
        message: String,
    },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// The whole effective configuration of one sigcast process.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerSettings,
    pub tls: TlsSettings,
    pub auth: AuthSettings,
    pub source: SourceSettings,
    pub binance: BinanceSettings,
    pub signals: SignalsSettings,
    pub data: DataSettings,
    pub journal: JournalSettings,
    pub market_data: MarketDataSettings,
    pub admin: AdminSettings,
    pub log: LogSettings,
    pub cluster: ClusterSettings,
    /// How signals are paper-traded for the track record (defaults for every strategy).
    pub ledger: LedgerSettings,
}

impl Config {
    /// Loads defaults, then `file` (if any), then `SIGCAST_*` from `env`, then `overrides`.
    ///
    /// Relative paths in the file are taken relative to the file's directory, so a config
    /// works from any working directory; paths from env and flags are relative to the cwd.
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        match Config::load_checked(file, env, overrides) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, mut problems) => Err(problems.remove(0)),
        }
    }

    /// As [`Config::load`], but goes on past the first problem and returns every one: each
    /// bad key of the file, env and flags, then each broken relation between the keys that
    /// remain, with the configuration those make (so what depends on it can be checked too).
    /// A file that cannot be read or is not TOML at all is one problem and no configuration.
    pub fn load_checked(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        overrides: &Overrides,
    ) -> (Option<Config>, Vec<ConfigError>) {
        let text = match file.map(|path| (path, std::fs::read_to_string(path))) {
            None => None,
            Some((path, Ok(text))) => Some((path, text)),
            Some((path, Err(source))) => {
                let path = path.to_path_buf();
                return (None, vec![ConfigError::Read { path, source }]);
            }
        };
        let file = text.as_ref().map(|(path, text)| (*path, text.as_str()));
        Config::checked(file, env, overrides)
    }

    /// As [`Config::load_checked`], with the file's text already read: `path` names it in
    /// messages and anchors its relative paths.
    pub fn checked(
        file: Option<(&Path, &str)>,
        env: &BTreeMap<String, String>,
        overrides: &Overrides,
    ) -> (Option<Config>, Vec<ConfigError>) {
        let mut problems = Vec::new();
        let mut table = toml::Table::new();
        if let Some((path, text)) = file {
            let parsed = match text.parse::<toml::Table>() {
                Ok(parsed) => parsed,
                Err(e) => {
                    let message = toml_error(text, &e);
                    let path = path.to_path_buf();
                    return (None, vec![ConfigError::Parse { path, message }]);
                }
            };
            // Each setting on its own, so one bad key does not hide the next.
            let mut leaves = Vec::new();
            flatten(&parsed, &[], &mut leaves);
            let origin = path.display().to_string();
            for (at, value) in leaves {
                if let Err(problem) = accept(&mut table, &at, Ok(value), &origin) {
                    problems.push(problem);
                }
            }
            let base = path.parent().unwrap_or(Path::new(""));
            rebase_paths(&mut table, base);
        }
        for key in KEYS {
            if let Some(text) = env.get(&key.env_name()) {
                let at: Vec<String> = key.name.split('.').map(String::from).collect();
                if let Err(p) = accept(&mut table, &at, key.parse(text), &key.env_name()) {
                    problems.push(p);
                }
            }
        }
        for (name, text) in &overrides.values {
            let parsed = key(name)
                .ok_or_else(|| "no such setting (see `sigcast config keys`)".to_string())
                .and_then(|key| key.parse(text));
            let at: Vec<String> = name.split('.').map(String::from).collect();
            if let Err(p) = accept(&mut table, &at, parsed, "flag") {
                problems.push(p);
            }
        }
        match toml::Value::Table(table).try_into::<Config>() {
            Ok(config) => {
                problems.extend(config.problems());
                (Some(config), problems)
            }
            Err(e) => {
                problems.push(ConfigError::Parse {
                    path: file.map(|f| f.0.to_path_buf()).unwrap_or_default(),
                    message: e.to_string(),
                });
                (None, problems)
            }
        }
    }

    /// Checks the relations between keys that types alone cannot; the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// The effective configuration as TOML, secrets redacted. Keys and secrets live in files
    /// whose paths alone appear; the one secret a value can hold is a password in the
    /// SOCKS5 proxy URL, shown as `***`.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.binance.proxy = redact_password(&shown.binance.proxy);
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// `scheme://user:password@host` with the password replaced by `***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            match userinfo.contains(':') {
                true => format!("{scheme}://{user}:***@{host}"),
                false => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

/// A market symbol as Binance spells them: upper-case letters and digits.
pub fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 20
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Every setting of a parsed file as (path, value); arrays (of tables too) are values.
fn flatten(table: &toml::Table, prefix: &[String], out: &mut Vec<(Vec<String>, toml::Value)>) {
    for (k, v) in table {
        let mut path = prefix.to_vec();
        path.push(k.clone());
        match v {
            toml::Value::Table(t) if !t.is_empty() => flatten(t, &path, out),
            other => out.push((path, other.clone())),
        }
    }
}

/// Takes one setting into `table` when its value is good for its key on its own, or says
/// why not (naming where it came from: a file, an environment variable or `flag`).
fn accept(
    table: &mut toml::Table,
    at: &[String],
    value: Result<toml::Value, String>,
    origin: &str,
) -> Result<(), ConfigError> {
    let checked = value.and_then(|value| {
        let mut alone = toml::Table::new();
        insert_path(&mut alone, at, value.clone());
        match toml::Value::Table(alone).try_into::<Config>() {
            Ok(_) => Ok(value),
            Err(e) => Err(e.message().trim().replace('\n', " | ")),
        }
    });
    match checked {
        Ok(value) => {
            insert_path(table, at, value);
            Ok(())
        }
        Err(message) => Err(ConfigError::Setting {
            origin: origin.to_string(),
            key: at.join("."),
            message,
        }),
    }
}

/// Sets the setting at a path (`["server", "listen"]`), making the tables on the way.
fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [leaf] => {
            table.insert(leaf.clone(), value);
        }
        [section, rest @ ..] => {
            let entry = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                insert_path(t, rest, value);
            }
        }
    }
}

/// Makes relative path values from a file relative to that file's directory.
fn rebase_paths(table: &mut toml::Table, base: &Path) {
    let rebase = |v: &mut toml::Value| {
        if let toml::Value::String(s) = v {
            let p = Path::new(s.as_str());
            if p.is_relative() && !s.is_empty() {
                *s = base.join(p).to_string_lossy().into_owned();
            }
        }
    };
    for key in KEYS
        .iter()
        .filter(|k| matches!(k.kind, Kind::Path | Kind::PathList))
    {
        let (section, leaf) = key.name.split_once('.').expect("keys are section.leaf");
        match table
            .get_mut(section)
            .and_then(|s| s.as_table_mut())
            .and_then(|s| s.get_mut(leaf))
        {
            Some(toml::Value::Array(items)) => items.iter_mut().for_each(rebase),
            Some(v) => rebase(v),
            None => {}
        }
    }
    if let Some(keys) = table
        .get_mut("auth")
        .and_then(|a| a.as_table_mut())
        .and_then(|a| a.get_mut("keys"))
        .and_then(|k| k.as_array_mut())
    {
        for k in keys.iter_mut().filter_map(|k| k.as_table_mut()) {
            if let Some(v) = k.get_mut("file") {
                rebase(v);
            }
        }
    }
}

/// Reads the `SIGCAST_*` variables of this process.
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("SIGCAST_"))
        .collect()
}

#[cfg(test)]
mod tests;
