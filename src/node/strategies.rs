//! The strategies a node runs, and the symbols its market source offers them.

use crate::config::{Config, SourceKind};
use crate::strategy::{Instance, definition};

/// The strategy instances of `signals.dir`. With the synthetic source their symbols must be
/// among the ones it walks; a replay offers whatever its recordings hold.
pub fn load(config: &Config) -> anyhow::Result<Vec<Instance>> {
    Ok(definition::load(
        &config.signals.dir,
        offered_symbols(config),
    )?)
}

/// The symbols strategies may trade: the synthetic market's own; any for the others.
pub(super) fn offered_symbols(config: &Config) -> Option<&[String]> {
    match config.source.kind {
        SourceKind::Synthetic => Some(config.source.symbols.as_slice()),
        SourceKind::Replay | SourceKind::Binance => None,
    }
}

/// The symbols `test` replies pick from until prices of others arrive.
pub(super) fn seed_symbols(config: &Config) -> Vec<String> {
    match config.source.kind {
        SourceKind::Synthetic => config.source.symbols.clone(),
        SourceKind::Replay | SourceKind::Binance => Vec::new(),
    }
}
