//! The rules the ledger trades each strategy by: its costs and size, and the market whose
//! prices mark its positions.

use std::collections::HashMap;

use crate::config::ledger::{LedgerSettings, Positions};
use crate::market::Market;
use crate::strategy::Instance;

/// How every strategy is traded and marked.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// For a strategy with no `[strategy.ledger]` of its own, and for publishers.
    pub defaults: LedgerSettings,
    /// From a definition's `[strategy.ledger]`.
    pub settings: HashMap<String, LedgerSettings>,
    /// The market each defined strategy trades on, so that a futures strategy is marked by
    /// futures prices even where the same symbol's spot market is followed too. A strategy
    /// not named here (a publisher's) is marked on spot where sigcast follows the symbol
    /// there, else on futures.
    pub markets: HashMap<String, Market>,
}

impl Rules {
    /// Every strategy by `defaults`, on whichever market follows its symbols.
    pub fn uniform(defaults: LedgerSettings) -> Self {
        Rules {
            defaults,
            ..Rules::default()
        }
    }

    /// The settings `strategy` trades by.
    pub fn settings(&self, strategy: &str) -> LedgerSettings {
        self.settings
            .get(strategy)
            .copied()
            .unwrap_or(self.defaults)
    }

    /// These rules with `forced` put over every strategy's settings.
    pub fn forced(self, forced: &Forced) -> Self {
        Rules {
            defaults: forced.apply(self.defaults),
            settings: self
                .settings
                .into_iter()
                .map(|(name, s)| (name, forced.apply(s)))
                .collect(),
            markets: self.markets,
        }
    }
}

/// Each instance's rules: `defaults` with its definition's `[strategy.ledger]` over them, and
/// its market.
pub fn rules(instances: &[Instance], defaults: &LedgerSettings) -> Rules {
    let mut rules = Rules::uniform(*defaults);
    for i in instances {
        let name = i.strategy.name().to_string();
        rules.markets.insert(name.clone(), i.strategy.market());
        // Checked when the definitions were loaded.
        if let Some(settings) = i.ledger.as_ref().and_then(|t| defaults.with(t).ok()) {
            rules.settings.insert(name, settings);
        }
    }
    rules
}

/// Settings that win over the configuration and every definition (`sigcast backtest
/// --positions --fee-bps --slippage-bps`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Forced {
    pub positions: Option<Positions>,
    pub fee_bps: Option<f64>,
    pub slippage_bps: Option<f64>,
}

impl Forced {
    /// `settings` with what is forced put over it.
    pub fn apply(&self, settings: LedgerSettings) -> LedgerSettings {
        LedgerSettings {
            positions: self.positions.unwrap_or(settings.positions),
            fee_bps: self.fee_bps.unwrap_or(settings.fee_bps),
            slippage_bps: self.slippage_bps.unwrap_or(settings.slippage_bps),
            ..settings
        }
    }
}
