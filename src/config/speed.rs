//! The replay pace (`source.replay_speed`), read once from its text into a [`Speed`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How fast the replay source plays.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Speed {
    /// Receive-time gaps divided by this factor: 1 is real time, 10 is ten times faster.
    Factor(f64),
    /// No waiting at all.
    Max,
}

impl FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let factor = s.strip_suffix(['x', 'X']).unwrap_or(s);
        match factor.parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "{s:?} is not a replay speed: use 1 (real time), 10x, or max"
            )),
        }
    }
}

impl TryFrom<String> for Speed {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Max => f.write_str("max"),
            Speed::Factor(x) if *x == 1.0 => f.write_str("1"),
            Speed::Factor(x) => write!(f, "{x}x"),
        }
    }
}

impl From<Speed> for String {
    fn from(speed: Speed) -> String {
        speed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_read_and_print_back_the_same() {
        for (text, speed) in [
            ("max", Speed::Max),
            ("MAX", Speed::Max),
            ("1", Speed::Factor(1.0)),
            ("10x", Speed::Factor(10.0)),
            ("2.5X", Speed::Factor(2.5)),
        ] {
            assert_eq!(text.parse::<Speed>(), Ok(speed), "{text}");
            assert_eq!(speed.to_string().parse::<Speed>(), Ok(speed));
        }
        for bad in ["0", "-1", "fast", "", "nanx", "infx"] {
            assert!(bad.parse::<Speed>().is_err(), "{bad:?} accepted");
        }
    }
}
