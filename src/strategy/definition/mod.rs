//! Strategy definitions: the `signals/*.toml` files operators write, checked and built.
//!
//! ```toml
//! [[strategy]]
//! name = "btc-rsi"          # unique across all files
//! kind = "rsi"              # ma_cross, rsi, bollinger, macd, donchian, book_imbalance
//! market = "spot"           # or "futures" (USD-M); default spot
//! symbols = ["BTCUSDT"]     # or symbol = "BTCUSDT"
//! interval = "1m"           # Binance's: 1s, 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d
//! cooldown = "5m"           # optional: quiet time after each signal
//! enabled = true            # optional
//! [strategy.params]         # per kind; omitted keys take their defaults
//! period = 14
//! [strategy.ledger]         # optional: how its track record trades it; omitted keys
//! fee_bps = 4               #   take the [ledger] settings of sigcast.toml
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::builtin::bollinger::BollingerBands;
use super::builtin::book_imbalance::BookImbalance;
use super::builtin::donchian::Donchian;
use super::builtin::ma_cross::MaCross;
use super::builtin::macd::MacdCross;
use super::builtin::rsi::RsiLevels;
use super::common::{CandleLogic, Common, OnCandles};
use super::exec::Exec;
use super::{Instance, Strategy};
use crate::config::{LedgerSettings, valid_symbol};
use crate::market::{Interval, Market};

/// The most history candles a strategy may need: what one REST klines request returns.
pub const MAX_WARMUP: usize = 1000;

/// The definitions used when `signals.dir` does not exist (also what `sigcast init` writes).
pub const DEFAULT_DEFINITIONS: &str = include_str!("../../../signals/default.toml");

/// Why the strategy definitions cannot be used; each names the file, and the instance and
/// key where there is one.
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

/// One `[[strategy]]` block.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    pub kind: Kind,
    #[serde(default = "default_market")]
    pub market: Market,
    #[serde(default)]
    pub symbol: Option<String>,
    #[serde(default)]
    pub symbols: Vec<String>,
    pub interval: String,
    #[serde(default)]
    pub params: toml::Table,
    #[serde(default)]
    pub cooldown: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Paper-trading rules of its own (`[strategy.ledger]`), over the `[ledger]` settings.
    #[serde(default)]
    pub ledger: Option<toml::Table>,
}

fn default_market() -> Market {
    Market::Spot
}

fn enabled_by_default() -> bool {
    true
}

/// The built-in strategy kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    MaCross,
    Rsi,
    Bollinger,
    Macd,
    Donchian,
    BookImbalance,
    /// A plugin program (see [`super::exec`]).
    Exec,
}

/// Checked settings shared by every instance of a definition.
struct Checked {
    symbols: Vec<String>,
    interval: Interval,
    cooldown_ms: i64,
}

impl Definition {
    fn check(&self, offered: Option<&[String]>) -> Result<Checked, String> {
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
        let cooldown_ms = match &self.cooldown {
            None => 0,
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| format!("{}: {text:?} is not a duration: {e}", at("cooldown")))?
                .as_millis()
                .min(i64::MAX as u128) as i64,
        };
        if let Some(table) = &self.ledger {
            LedgerSettings::default()
                .with(table)
                .map_err(|e| format!("{}.{e}", at("ledger")))?;
        }
        let mut symbols = self.symbols.clone();
        if let Some(s) = &self.symbol {
            if !symbols.is_empty() {
                return Err(format!(
                    "{}: give symbol or symbols, not both",
                    at("symbol")
                ));
            }
            symbols.push(s.clone());
        }
        if symbols.is_empty() {
            return Err(format!("{}: needs at least one symbol", at("symbols")));
        }
        for s in &symbols {
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
        Ok(Checked {
            symbols,
            interval,
            cooldown_ms,
        })
    }

    /// One instance per symbol; a bad parameter is an error naming the key.
    fn build(&self, checked: &Checked, file: &Path) -> Result<Vec<Instance>, String> {
        let mut out = Vec::new();
        for symbol in &checked.symbols {
            let common = Common::new(
                &self.name,
                self.market,
                symbol,
                checked.interval,
                checked.cooldown_ms,
            );
            let built: Box<dyn Strategy> = match self.kind {
                Kind::MaCross => candles(common, MaCross::new(self.params()?)?)?,
                Kind::Rsi => candles(common, RsiLevels::new(self.params()?)?)?,
                Kind::Bollinger => candles(common, BollingerBands::new(self.params()?)?)?,
                Kind::Macd => candles(common, MacdCross::new(self.params()?)?)?,
                Kind::Donchian => candles(common, Donchian::new(self.params()?)?)?,
                Kind::BookImbalance => Box::new(BookImbalance::new(common, self.params()?)?),
                Kind::Exec => Box::new(Exec::new(common, self.params()?, file)?),
            };
            out.push(Instance {
                key: format!("{self:?} {symbol}"),
                strategy: built,
                ledger: self.ledger.clone(),
            });
        }
        Ok(out)
    }

    /// The kind's parameters, from `[strategy.params]`.
    fn params<P: DeserializeOwned>(&self) -> Result<P, String> {
        toml::Value::Table(self.params.clone())
            .try_into()
            .map_err(|e: toml::de::Error| {
                format!("params: {}", e.to_string().trim().replace('\n', " | "))
            })
    }
}

/// A candle strategy instance whose warm-up fits in one page of REST history.
fn candles<L: CandleLogic + 'static>(
    common: Common,
    logic: L,
) -> Result<Box<dyn Strategy>, String> {
    let need = logic.warmup();
    if need > MAX_WARMUP {
        return Err(format!(
            "params: needs {need} candles of history to warm up; at most {MAX_WARMUP}"
        ));
    }
    Ok(Box::new(
        OnCandles::new(common, logic).map_err(|e| e.to_string())?,
    ))
}

/// Parses, checks and builds the instances of one definitions text; the problems of each definition go to
/// `problems`, and the good ones are built all the same.
fn build_text(
    path: &Path,
    text: &str,
    offered: Option<&[String]>,
    seen: &mut Vec<String>,
    problems: &mut Vec<DefinitionError>,
) -> Vec<Instance> {
    let invalid = |message: String| DefinitionError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    // Each block on its own, so one bad [[strategy]] does not hide the next.
    let table = match text.parse::<toml::Table>() {
        Ok(table) => table,
        Err(e) => {
            problems.push(invalid(crate::config::toml_error(text, &e)));
            return Vec::new();
        }
    };
    let mut definitions = Vec::new();
    for (key, value) in table {
        let blocks = match (key.as_str(), value) {
            ("strategy", toml::Value::Array(blocks)) => blocks,
            ("strategy", _) => {
                problems.push(invalid(
                    "strategy: write each as a [[strategy]] block".into(),
                ));
                continue;
            }
            (other, _) => {
                problems.push(invalid(format!(
                    "{other}: unknown key; a definitions file holds [[strategy]] blocks"
                )));
                continue;
            }
        };
        for (n, block) in blocks.into_iter().enumerate() {
            let name = block.get("name").and_then(|v| v.as_str()).map(String::from);
            definitions.push(block.try_into::<Definition>().map_err(|e| {
                let which = match name {
                    Some(name) => format!("strategy {name:?}"),
                    None => format!("[[strategy]] #{}", n + 1),
                };
                let message = e.message().trim().replace('\n', "; ");
                invalid(format!("{which}: {message}"))
            }));
        }
    }
    let mut out = Vec::new();
    for def in definitions {
        let def = match def {
            Ok(def) => def,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if seen.contains(&def.name) {
            problems.push(invalid(format!(
                "strategy name {:?} is used twice",
                def.name
            )));
            continue;
        }
        seen.push(def.name.clone());
        let built = def.check(offered).map_err(&invalid).and_then(|checked| {
            def.build(&checked, path)
                .map_err(|e| invalid(format!("strategy {:?}: {e}", def.name)))
        });
        match built {
            Ok(built) if def.enabled => out.extend(built),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
    }
    out
}

/// Builds the instances of one definitions text (benchmarks, tests, tools).
pub fn from_text(text: &str) -> Result<Vec<Instance>, DefinitionError> {
    let mut problems = Vec::new();
    let built = build_text(
        Path::new("<text>"),
        text,
        None,
        &mut Vec::new(),
        &mut problems,
    );
    match problems.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(built),
    }
}

/// Loads every `*.toml` in `dir` (sorted by name), or the built-in default when `dir` is absent.
/// When `offered` is given, every symbol must be among them.
pub fn load(dir: &Path, offered: Option<&[String]>) -> Result<Vec<Instance>, DefinitionError> {
    load_checked(dir, offered).map_err(|mut problems| problems.remove(0))
}

/// As [`load`], but reports every problem of every file (never an empty list).
pub fn load_checked(
    dir: &Path,
    offered: Option<&[String]>,
) -> Result<Vec<Instance>, Vec<DefinitionError>> {
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    let mut out = Vec::new();
    if !dir.exists() {
        let path = Path::new("<built-in default>");
        out = build_text(path, DEFAULT_DEFINITIONS, offered, &mut seen, &mut problems);
    } else {
        let read_err = |source| {
            vec![DefinitionError::Read {
                path: dir.to_path_buf(),
                source,
            }]
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(read_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            match std::fs::read_to_string(&path) {
                Ok(text) => out.extend(build_text(&path, &text, offered, &mut seen, &mut problems)),
                Err(source) => problems.push(DefinitionError::Read { path, source }),
            }
        }
        if out.is_empty() && problems.is_empty() {
            problems.push(DefinitionError::Invalid {
                path: dir.to_path_buf(),
                message: "no enabled [[strategy]]: sigcast would never emit a signal".into(),
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests;
