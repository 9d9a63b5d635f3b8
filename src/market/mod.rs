//! Market data: typed [`MarketEvent`]s and the sources that produce them.
//!
//! Every event carries the exchange's event time and the local receive time, so downstream
//! code can measure lag while strategies stay on exchange time alone. Binance's wire format
//! lives apart, in [`binance`].

pub mod binance;
mod event;
mod interval;
pub mod kline;
mod malformed;
pub mod recording;
pub mod replay;
pub mod stats;
mod symbol;
pub mod synthetic;

pub use event::*;
pub use interval::{Interval, UnknownInterval};
pub use malformed::Malformed;
pub use rust_decimal::Decimal;
pub use stats::SourceStats;
pub use symbol::Symbol;
