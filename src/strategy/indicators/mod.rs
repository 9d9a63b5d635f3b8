//! Streaming indicators, following TA-Lib's definitions value for value.
//!
//! Each takes one value at a time and returns `None` until it is fully warmed up (exactly
//! where TA-Lib's output starts), so no signal can come from a half-warmed indicator.
//! `tests/it/indicators_match_talib.rs` checks them against figures computed with TA-Lib.

mod bollinger;
mod ema;
mod extremes;
mod macd;
mod rsi;
mod sma;

pub use bollinger::{Bands, Bollinger};
pub use ema::Ema;
pub use extremes::{RollingMax, RollingMin};
pub use macd::{Macd, MacdOutput};
pub use rsi::Rsi;
pub use sma::Sma;
