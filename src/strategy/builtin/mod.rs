//! The built-in strategy kinds, one file each: what `kind = "..."` names in a definition.

pub mod bollinger;
pub mod book_imbalance;
pub mod donchian;
pub mod ma_cross;
pub mod macd;
pub mod rsi;
