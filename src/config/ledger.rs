//! How the ledger paper-trades a strategy's signals (`[ledger]`, and a definition's
//! `[strategy.ledger]`): position mode, costs and size.

use serde::{Deserialize, Serialize};

/// What a sell does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// A buy opens a long position, a sell closes it; a sell with nothing open does nothing.
    #[default]
    LongOnly,
    /// A buy goes long and a sell goes short, each closing the position it reverses.
    LongShort,
}

impl Positions {
    pub fn as_str(self) -> &'static str {
        match self {
            Positions::LongOnly => "long_only",
            Positions::LongShort => "long_short",
        }
    }
}

impl std::str::FromStr for Positions {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "long_only" => Ok(Positions::LongOnly),
            "long_short" => Ok(Positions::LongShort),
            other => Err(format!(
                "positions: expected long_only or long_short, got {other:?}"
            )),
        }
    }
}

/// The paper-trading rules for one strategy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerSettings {
    pub positions: Positions,
    /// Fee per side, in basis points of the traded value (10 = 0.1 %, Binance spot's base
    /// taker fee).
    pub fee_bps: f64,
    /// How far the fill is from the signal's price, against the trader, in basis points.
    pub slippage_bps: f64,
    /// Quote value of each position when it opens (e.g. 1,000 USDT).
    pub notional: f64,
    /// The account each strategy's returns are measured against, in quote.
    pub capital: f64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings {
            positions: Positions::LongOnly,
            fee_bps: 10.0,
            slippage_bps: 2.0,
            notional: 1_000.0,
            capital: 10_000.0,
        }
    }
}

/// Most basis points a fee or slippage may be (10 %): beyond that it is a typo.
const MAX_BPS: f64 = 1_000.0;

impl LedgerSettings {
    /// Checks the values, naming the first bad one.
    pub fn check(&self) -> Result<(), String> {
        for (name, bps) in [
            ("fee_bps", self.fee_bps),
            ("slippage_bps", self.slippage_bps),
        ] {
            if !(0.0..=MAX_BPS).contains(&bps) {
                return Err(format!(
                    "{name}: expected 0 to {MAX_BPS} basis points, got {bps}"
                ));
            }
        }
        if !(self.notional.is_finite() && self.notional > 0.0) {
            return Err(format!(
                "notional: expected a positive quote amount, got {}",
                self.notional
            ));
        }
        if !(self.capital.is_finite() && self.capital >= self.notional) {
            return Err(format!(
                "capital: expected at least the notional ({}), got {}",
                self.notional, self.capital
            ));
        }
        Ok(())
    }

    /// These settings with the keys of `table` (a definition's `[strategy.ledger]`) put
    /// over them, checked.
    pub fn with(&self, table: &toml::Table) -> Result<LedgerSettings, String> {
        let mut merged = match toml::Value::try_from(self) {
            Ok(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        };
        for (key, value) in table {
            merged.insert(key.clone(), value.clone());
        }
        let settings: LedgerSettings = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| e.message().trim().replace('\n', "; "))?;
        settings.check()?;
        Ok(settings)
    }

    /// The fee per side as a fraction.
    pub fn fee(&self) -> f64 {
        self.fee_bps / 10_000.0
    }

    /// The slippage as a fraction.
    pub fn slippage(&self) -> f64 {
        self.slippage_bps / 10_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named() {
        let bad = |f: fn(&mut LedgerSettings)| {
            let mut s = LedgerSettings::default();
            f(&mut s);
            s.check().unwrap_err()
        };
        assert!(bad(|s| s.fee_bps = -1.0).starts_with("fee_bps"));
        assert!(bad(|s| s.slippage_bps = f64::NAN).starts_with("slippage_bps"));
        assert!(bad(|s| s.notional = 0.0).starts_with("notional"));
        assert!(bad(|s| s.capital = 10.0).starts_with("capital"));
        assert_eq!(LedgerSettings::default().check(), Ok(()));
        assert_eq!("long_short".parse(), Ok(Positions::LongShort));
        assert!("both".parse::<Positions>().is_err());
    }

    #[test]
    fn a_definition_table_goes_over_the_defaults() {
        let defaults = LedgerSettings {
            notional: 500.0,
            ..LedgerSettings::default()
        };
        let table: toml::Table = toml::from_str("positions = \"long_short\"\nfee_bps = 4").unwrap();
        let s = defaults.with(&table).unwrap();
        assert_eq!(s.positions, Positions::LongShort);
        assert_eq!(s.fee_bps, 4.0);
        assert_eq!(s.notional, 500.0, "from the defaults");
        let unknown: toml::Table = toml::from_str("fees = 4").unwrap();
        assert!(defaults.with(&unknown).unwrap_err().contains("fees"));
        let bad: toml::Table = toml::from_str("fee_bps = -3").unwrap();
        assert!(defaults.with(&bad).unwrap_err().starts_with("fee_bps"));
    }
}
