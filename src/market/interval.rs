//! Kline intervals as Binance names them (`1s`, `1m`, ... `1M`).

use std::fmt;
use std::str::FromStr;

/// A kline interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Interval {
    S1,
    M1,
    M3,
    M5,
    M15,
    M30,
    H1,
    H2,
    H4,
    H6,
    H8,
    H12,
    D1,
    D3,
    W1,
    Mo1,
}

const ALL: [(Interval, &str, i64); 16] = [
    (Interval::S1, "1s", 1_000),
    (Interval::M1, "1m", 60_000),
    (Interval::M3, "3m", 180_000),
    (Interval::M5, "5m", 300_000),
    (Interval::M15, "15m", 900_000),
    (Interval::M30, "30m", 1_800_000),
    (Interval::H1, "1h", 3_600_000),
    (Interval::H2, "2h", 7_200_000),
    (Interval::H4, "4h", 14_400_000),
    (Interval::H6, "6h", 21_600_000),
    (Interval::H8, "8h", 28_800_000),
    (Interval::H12, "12h", 43_200_000),
    (Interval::D1, "1d", 86_400_000),
    (Interval::D3, "3d", 259_200_000),
    (Interval::W1, "1w", 604_800_000),
    (Interval::Mo1, "1M", 0),
];

impl Interval {
    /// Binance's name for it.
    pub fn as_str(self) -> &'static str {
        ALL[self as usize].1
    }

    /// Its fixed length in milliseconds, for intervals sigcast aggregates itself
    /// (`1s` to `1d`); weeks align to Mondays and months vary, so those are `None`.
    pub fn fixed_millis(self) -> Option<i64> {
        match self {
            Interval::D3 | Interval::W1 | Interval::Mo1 => None,
            _ => Some(ALL[self as usize].2),
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An interval name Binance does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a Binance kline interval (1s, 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M)"
)]
pub struct UnknownInterval(pub String);

impl FromStr for Interval {
    type Err = UnknownInterval;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL.iter()
            .find(|(_, name, _)| *name == s)
            .map(|(i, _, _)| *i)
            .ok_or_else(|| UnknownInterval(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (i, name, _) in ALL {
            assert_eq!(name.parse::<Interval>().unwrap(), i);
            assert_eq!(i.as_str(), name);
        }
        assert!("2m".parse::<Interval>().is_err());
        assert_eq!(Interval::M15.fixed_millis(), Some(900_000));
        assert_eq!(Interval::W1.fixed_millis(), None);
    }
}
