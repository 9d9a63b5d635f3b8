//! Strategy definitions: the `signals/*.toml` files operators write, checked and built.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Strategy;
use super::ma_cross::{Average, MaCross, MaCrossParams};
use crate::config::valid_symbol;
use crate::market::{Interval, Market};

/// The definitions used when `signals.dir` does not exist (also what `sigcast init` writes).
pub const DEFAULT_DEFINITIONS: &str = include_str!("../../signals/default.toml");

/// Why the strategy definitions cannot be used; each names the file and key.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("cannot read strategy definitions in {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One file's content.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    strategy: Vec<Definition>,
}

/// One `[[strategy]]` block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    pub kind: Kind,
    /// `spot` (default) or `futures` (USD-M).
    #[serde(default = "default_market")]
    pub market: Market,
    pub symbols: Vec<String>,
    pub interval: String,
    pub fast: usize,
    pub slow: usize,
    #[serde(default = "default_average")]
    pub average: Average,
}

fn default_market() -> Market {
    Market::Spot
}

fn default_average() -> Average {
    Average::Sma
}

/// The built-in strategy kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    MaCross,
}

impl Definition {
    fn check(&self, offered: Option<&[String]>) -> Result<Interval, String> {
        let at = |key: &str| format!("strategy {:?}: {key}", self.name);
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "strategy name {:?}: use letters, digits, - and _",
                self.name
            ));
        }
        let interval: Interval = self
            .interval
            .parse()
            .map_err(|e| format!("{}: {e}", at("interval")))?;
        if interval.fixed_millis().is_none() {
            return Err(format!(
                "{}: candles are built from trades, so use 1s to 1d",
                at("interval")
            ));
        }
        if self.fast == 0 || self.slow <= self.fast {
            return Err(format!("{}: need 0 < fast < slow", at("fast/slow")));
        }
        if self.symbols.is_empty() {
            return Err(format!("{}: needs at least one symbol", at("symbols")));
        }
        for s in &self.symbols {
            if !valid_symbol(s) {
                return Err(format!("{}: {s:?} is not a symbol", at("symbols")));
            }
            if offered.is_some_and(|known| !known.contains(s)) {
                return Err(format!(
                    "{}: {s:?} is not offered by the market source (source.symbols)",
                    at("symbols")
                ));
            }
        }
        Ok(interval)
    }

    /// One strategy instance per symbol.
    fn build(&self, interval: Interval) -> Vec<Box<dyn Strategy>> {
        self.symbols
            .iter()
            .filter_map(|symbol| match self.kind {
                // `check` accepted only fixed intervals, which KlineBuilder supports.
                Kind::MaCross => MaCross::new(MaCrossParams {
                    name: self.name.clone(),
                    market: self.market,
                    symbol: symbol.clone(),
                    interval,
                    fast: self.fast,
                    slow: self.slow,
                    average: self.average,
                })
                .ok()
                .map(|s| Box::new(s) as Box<dyn Strategy>),
            })
            .collect()
    }
}

/// Parses, checks and builds the instances of one definitions text.
fn build_text(
    path: &Path,
    text: &str,
    offered: Option<&[String]>,
    seen: &mut Vec<String>,
) -> Result<Vec<Box<dyn Strategy>>, DefinitionError> {
    let invalid = |message: String| DefinitionError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let file: File =
        toml::from_str(text).map_err(|e| invalid(e.to_string().trim().replace('\n', " | ")))?;
    let mut out = Vec::new();
    for def in &file.strategy {
        let interval = def.check(offered).map_err(invalid)?;
        if seen.contains(&def.name) {
            return Err(invalid(format!(
                "strategy name {:?} is used twice",
                def.name
            )));
        }
        seen.push(def.name.clone());
        out.extend(def.build(interval));
    }
    Ok(out)
}

/// Loads every `*.toml` in `dir` (sorted by name), or the built-in default when `dir` is absent.
/// When `offered` is given, every symbol must be among them.
pub fn load(
    dir: &Path,
    offered: Option<&[String]>,
) -> Result<Vec<Box<dyn Strategy>>, DefinitionError> {
    let mut seen = Vec::new();
    if !dir.exists() {
        return build_text(
            Path::new("<built-in default>"),
            DEFAULT_DEFINITIONS,
            offered,
            &mut seen,
        );
    }
    let read_err = |source| DefinitionError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| DefinitionError::Read {
            path: path.clone(),
            source,
        })?;
        out.extend(build_text(&path, &text, offered, &mut seen)?);
    }
    if out.is_empty() {
        return Err(DefinitionError::Invalid {
            path: dir.to_path_buf(),
            message: "no [[strategy]] defined: sigcast would never emit a signal".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols() -> Vec<String> {
        ["BTCUSDT", "ETHUSDT", "SOLUSDT"].map(String::from).to_vec()
    }

    #[test]
    fn default_builds_one_instance_per_symbol() {
        let built = load(Path::new("/nonexistent/signals"), Some(&symbols())).unwrap();
        assert_eq!(built.len(), 3);
        assert_eq!(built[0].name(), "ma-fast");
        // Subscriptions follow from the strategies.
        let engine = crate::strategy::Engine::new(built);
        assert_eq!(
            engine.streams(),
            vec![
                (Market::Spot, "btcusdt@aggTrade".to_string()),
                (Market::Spot, "ethusdt@aggTrade".to_string()),
                (Market::Spot, "solusdt@aggTrade".to_string()),
            ]
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.toml");
        let bad = DEFAULT_DEFINITIONS.replace("slow = 8", "slow = 2");
        std::fs::write(&f, bad).unwrap();
        let err = load(dir.path(), Some(&symbols()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("a.toml") && err.contains("fast/slow"), "{err}");

        std::fs::write(
            &f,
            DEFAULT_DEFINITIONS.replace("\"SOLUSDT\"", "\"DOGEUSDT\""),
        )
        .unwrap();
        let err = load(dir.path(), Some(&symbols()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("DOGEUSDT"), "{err}");

        std::fs::write(
            &f,
            DEFAULT_DEFINITIONS.replace("fast = 3", "fast = 3\nfats = 1"),
        )
        .unwrap();
        let err = load(dir.path(), Some(&symbols()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("fats"), "{err}");
    }
}
