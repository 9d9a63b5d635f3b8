//! The ledger: each strategy's signals paper-traded on each symbol, the same way in a
//! backtest and on a live server, marked to market once a minute for an equity curve, and
//! the figures traders judge a signal provider by (docs/performance.md).
//!
//! Fed two things in time order: market prices ([`Ledger::mark`]) and signals
//! ([`Ledger::signal`]). A signal for a symbol the ledger has no price for is counted as
//! untracked, never traded at a guessed price.
//!
//! About 500 lines: sampling and the report share the curves' invariants (each curve's
//! `start`, thinning, the final sample) and read best together; trades, figures and
//! checkpoints live beside it.

pub mod checkpoint;
pub mod figures;
pub mod headline;
pub mod rules;
pub mod table;
pub mod trade;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

pub use crate::config::ledger::{LedgerSettings, Positions};
pub use checkpoint::Checkpoint;
pub use figures::Figures;
pub use headline::Headline;
pub use rules::{Forced, Rules, rules};
pub use trade::{Direction, Trade};

use figures::Record;
use trade::{Book, Order};

use crate::market::Market;
use crate::strategy::{Side, Signal};

/// Equity is sampled on each minute boundary.
const MINUTE_MS: i64 = 60_000;
/// Most equity samples kept (a week of minutes): past it, every other sample is dropped and
/// the period doubles, so a long-running server's record stays within a bounded size, and
/// Sharpe and Sortino are annualized by the period in use (docs/performance.md).
pub const MAX_SAMPLES: usize = 10_080;

/// Every strategy's paper trades and equity. Cloned whole for a report, so that a live
/// server computes the figures outside the lock its numbering takes.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    rules: Rules,
    accounts: BTreeMap<String, Account>,
    /// The first and latest price of each symbol marked, by market (`Market as usize`):
    /// a futures position is marked by futures prices, never by spot's.
    prices: [HashMap<String, Mark>; 2],
    /// When each equity sample was taken, shared by every curve.
    times: Vec<i64>,
    /// The sampling period is a minute doubled this many times (see [`MAX_SAMPLES`]).
    coarse: u32,
    /// The sampling period (counted from the Unix epoch) of the latest mark.
    minute: Option<i64>,
    /// The latest mark's or signal's time.
    now_ms: i64,
    /// Signals for symbols with no price, by strategy and symbol.
    untracked: BTreeMap<(String, String), u64>,
    /// The last `seq` traded, which a [`Checkpoint`] names.
    last_seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    first: f64,
    last: f64,
}

/// One strategy's books and equity.
#[derive(Debug, Clone)]
struct Account {
    settings: LedgerSettings,
    books: BTreeMap<String, Sampled>,
    /// P&L at each sample from `start` on (flat before).
    pnl: Vec<f64>,
    start: usize,
    /// Positions open across its books, and since when at least one has been.
    open: usize,
    exposed_since: Option<i64>,
    exposed_ms: i64,
}

/// A book and its P&L at each sample from `start` on.
#[derive(Debug, Clone)]
struct Sampled {
    /// Whose prices mark it, chosen when it opened (see [`Ledger::market_for`]).
    market: Market,
    book: Book,
    pnl: Vec<f64>,
    start: usize,
}

impl Ledger {
    /// A ledger trading every strategy by `rules`.
    pub fn new(rules: Rules) -> Self {
        Ledger {
            rules,
            ..Ledger::default()
        }
    }

    /// New rules (the configuration's defaults and the definitions', on a reload). A strategy
    /// that has traded keeps the rules it started with, and each book the market it opened
    /// on, so its record is one set of rules.
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
    }

    /// The rules a strategy with none of its own is traded by.
    pub fn defaults(&self) -> LedgerSettings {
        self.rules.defaults
    }

    fn priced(&self, market: Market, symbol: &str) -> bool {
        self.prices[market as usize].contains_key(symbol)
    }

    /// The market whose prices trade and mark `strategy`'s signals for `symbol`: its book's
    /// if it has one, else its definition's, else spot where spot prices the symbol, else
    /// futures. `None` when that market has no price for it: the signal is untracked.
    pub fn market_for(&self, strategy: &str, symbol: &str) -> Option<Market> {
        if let Some(sampled) = self
            .accounts
            .get(strategy)
            .and_then(|a| a.books.get(symbol))
        {
            return Some(sampled.market);
        }
        match self.rules.markets.get(strategy) {
            Some(&market) => self.priced(market, symbol).then_some(market),
            None => [Market::Spot, Market::Futures]
                .into_iter()
                .find(|&m| self.priced(m, symbol)),
        }
    }

    /// Marks the market a signal is traded on at the signal's own price: how a journal is
    /// replayed where it holds no other prices (before its first checkpoint, or an export).
    pub fn mark_at_signal(&mut self, signal: &Signal) {
        let market = self
            .market_for(&signal.strategy, &signal.symbol)
            .or_else(|| self.rules.markets.get(signal.strategy.as_str()).copied())
            .unwrap_or(Market::Spot);
        self.mark(
            market,
            &signal.symbol,
            signal.timestamp.saturating_mul(1000),
            signal.price,
        );
    }

    /// A market price: the symbol's latest on `market`, for marking and for signals to come.
    /// Takes an equity sample first when a minute boundary has passed since the last mark.
    pub fn mark(&mut self, market: Market, symbol: &str, time_ms: i64, price: f64) {
        if !price.is_finite() || price <= 0.0 {
            return;
        }
        let period = self.period_ms();
        let minute = time_ms.div_euclid(period);
        match self.minute {
            None => {
                self.minute = Some(minute);
                self.now_ms = time_ms;
                self.sample(time_ms);
            }
            Some(last) if minute > last => {
                self.minute = Some(minute);
                self.sample((last + 1) * period);
            }
            _ => {}
        }
        self.now_ms = self.now_ms.max(time_ms);
        let prices = &mut self.prices[market as usize];
        match prices.get_mut(symbol) {
            Some(mark) => mark.last = price,
            None => {
                prices.insert(
                    symbol.to_string(),
                    Mark {
                        first: price,
                        last: price,
                    },
                );
            }
        }
    }

    /// A signal of `strategy`'s, numbered `seq`, at `time_ms`.
    pub fn signal(
        &mut self,
        strategy: &str,
        symbol: &str,
        side: Side,
        price: f64,
        seq: u64,
        time_ms: i64,
    ) {
        let market = self.market_for(strategy, symbol);
        let Some(market) = market.filter(|_| price.is_finite() && price > 0.0) else {
            *self
                .untracked
                .entry((strategy.to_string(), symbol.to_string()))
                .or_default() += 1;
            return;
        };
        self.now_ms = self.now_ms.max(time_ms);
        let start = self.times.len();
        let account = self
            .accounts
            .entry(strategy.to_string())
            .or_insert_with(|| Account {
                settings: self.rules.settings(strategy),
                books: BTreeMap::new(),
                pnl: Vec::new(),
                start,
                open: 0,
                exposed_since: None,
                exposed_ms: 0,
            });
        let settings = account.settings;
        let sampled = account
            .books
            .entry(symbol.to_string())
            .or_insert_with(|| Sampled {
                market,
                book: Book::default(),
                pnl: Vec::new(),
                start,
            });
        let was_open = sampled.book.open().is_some();
        let order = Order {
            side,
            price,
            seq,
            time_ms,
        };
        let is_open = sampled.book.apply(order, &settings);
        match (was_open, is_open) {
            (false, true) => {
                account.open += 1;
                if account.open == 1 {
                    account.exposed_since = Some(time_ms);
                }
            }
            (true, false) => {
                account.open -= 1;
                if account.open == 0
                    && let Some(since) = account.exposed_since.take()
                {
                    account.exposed_ms += (time_ms - since).max(0);
                }
            }
            _ => {}
        }
    }

    /// A numbered signal, traded at the time it is about (its `timestamp`): how backtests,
    /// the live hub and a rebuild from the journal all hand signals over.
    pub fn trade(&mut self, signal: &Signal, seq: u64) {
        self.last_seq = self.last_seq.max(seq);
        self.signal(
            &signal.strategy,
            &signal.symbol,
            signal.side,
            signal.price,
            seq,
            signal.timestamp.saturating_mul(1000),
        );
    }

    /// How often equity is sampled now.
    fn period_ms(&self) -> i64 {
        MINUTE_MS << self.coarse
    }

    /// Drops every other sample of every curve and doubles the period.
    fn thin(&mut self) {
        fn every_other<T>(start: usize, pnl: &mut Vec<T>) {
            let mut i = start;
            pnl.retain(|_| {
                i += 1;
                (i - 1) % 2 == 0
            });
        }
        for account in self.accounts.values_mut() {
            every_other(account.start, &mut account.pnl);
            account.start = account.start.div_ceil(2);
            for sampled in account.books.values_mut() {
                every_other(sampled.start, &mut sampled.pnl);
                sampled.start = sampled.start.div_ceil(2);
            }
        }
        every_other(0, &mut self.times);
        self.coarse += 1;
        self.minute = self.minute.map(|m| m.div_euclid(2));
    }

    /// Marks every open position to its symbol's latest price and records each curve's P&L.
    fn sample(&mut self, time_ms: i64) {
        self.times.push(time_ms);
        for account in self.accounts.values_mut() {
            let mut total = 0.0;
            for (symbol, sampled) in &mut account.books {
                if let Some(mark) = self.prices[sampled.market as usize].get(symbol) {
                    sampled.book.mark(mark.last, &account.settings);
                }
                let pnl = sampled.book.realized + sampled.book.unrealized();
                sampled.pnl.push(pnl);
                total += pnl;
            }
            account.pnl.push(total);
        }
        if self.times.len() > MAX_SAMPLES {
            self.thin();
        }
    }

    /// Every strategy's figures, per symbol too, its trades and its equity curve, as of the
    /// latest mark or signal (open positions marked to the latest prices).
    pub fn report(&self) -> Report {
        let now = self.now_ms;
        let periods_per_year = figures::PERIODS_PER_YEAR / f64::from(1u32 << self.coarse.min(31));
        let mut times = self.times.clone();
        let final_sample = times.last().is_none_or(|t| *t < now);
        if final_sample {
            times.push(now);
        }
        let strategies = self
            .accounts
            .iter()
            .map(|(name, account)| {
                let settings = &account.settings;
                let mut book_pnl_now = 0.0;
                let mut symbols = Vec::new();
                let mut trades = Vec::new();
                let mut holds = Vec::new();
                for (symbol, sampled) in &account.books {
                    let mut book = sampled.book.clone();
                    let prices = &self.prices[sampled.market as usize];
                    if let Some(mark) = prices.get(symbol) {
                        book.mark(mark.last, settings);
                        holds.push((mark.last / mark.first - 1.0) * 100.0);
                    }
                    let pnl_now = book.realized + book.unrealized();
                    book_pnl_now += pnl_now;
                    let mut pnl = sampled.pnl.clone();
                    if final_sample {
                        pnl.push(pnl_now);
                    }
                    let curve = equity(&times, sampled.start, &pnl, settings.capital);
                    let hold = prices.get(symbol).map(|m| (m.last / m.first - 1.0) * 100.0);
                    symbols.push(SymbolReport {
                        symbol: symbol.clone(),
                        market: sampled.market,
                        figures: figures_of(
                            &book,
                            &curve,
                            book.exposed_until(now),
                            hold,
                            settings,
                            periods_per_year,
                        ),
                    });
                    trades.extend(book.trades.iter().map(|t| TradeRow {
                        symbol: symbol.clone(),
                        trade: t.clone(),
                    }));
                }
                let mut pnl = account.pnl.clone();
                if final_sample {
                    pnl.push(book_pnl_now);
                }
                let curve = equity(&times, account.start, &pnl, settings.capital);
                trades
                    .sort_by_key(|r| (r.trade.exit_time_ms.unwrap_or(i64::MAX), r.trade.entry_seq));
                let closed: Vec<&Trade> = trades
                    .iter()
                    .map(|r| &r.trade)
                    .filter(|t| !t.is_open())
                    .collect();
                let open: Vec<&Trade> = trades
                    .iter()
                    .map(|r| &r.trade)
                    .filter(|t| t.is_open())
                    .collect();
                let exposed = account.exposed_ms
                    + account
                        .exposed_since
                        .map_or(0, |since| (now - since).max(0));
                let figures = figures::compute(&Record {
                    closed: &closed,
                    open: open.len(),
                    unrealized: open.iter().fold(0.0, |sum, t| sum + t.pnl),
                    capital: settings.capital,
                    curve: &curve,
                    exposed_ms: exposed,
                    buy_and_hold_pct: (!holds.is_empty())
                        .then(|| holds.iter().sum::<f64>() / holds.len() as f64),
                    periods_per_year,
                });
                StrategyReport {
                    strategy: name.clone(),
                    settings: *settings,
                    figures,
                    symbols,
                    trades,
                    equity: curve,
                }
            })
            .collect();
        Report {
            sample_minutes: 1u64 << self.coarse.min(63),
            strategies,
            untracked: self
                .untracked
                .iter()
                .map(|((strategy, symbol), signals)| Untracked {
                    strategy: strategy.clone(),
                    symbol: symbol.clone(),
                    signals: *signals,
                })
                .collect(),
        }
    }
}

/// One symbol's figures in one strategy.
fn figures_of(
    book: &Book,
    curve: &[(i64, f64)],
    exposed_ms: i64,
    buy_and_hold_pct: Option<f64>,
    settings: &LedgerSettings,
    periods_per_year: f64,
) -> Figures {
    let closed: Vec<&Trade> = book.trades.iter().filter(|t| !t.is_open()).collect();
    figures::compute(&Record {
        closed: &closed,
        open: usize::from(book.open().is_some()),
        unrealized: book.unrealized(),
        capital: settings.capital,
        curve,
        exposed_ms,
        buy_and_hold_pct,
        periods_per_year,
    })
}

/// `(time, equity)` at every sample: the capital until `start`, then capital plus `pnl`.
fn equity(times: &[i64], start: usize, pnl: &[f64], capital: f64) -> Vec<(i64, f64)> {
    times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let p = i
                .checked_sub(start)
                .and_then(|j| pnl.get(j))
                .copied()
                .unwrap_or(0.0);
            (t, capital + p)
        })
        .collect()
}

/// What the ledger shows: `report.json`'s figures, `/v1/performance`, `sigcast performance`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Minutes between equity samples: 1, doubled each time a record outgrows
    /// [`MAX_SAMPLES`].
    pub sample_minutes: u64,
    pub strategies: Vec<StrategyReport>,
    /// Signals for symbols sigcast had no price for: listed, never traded.
    pub untracked: Vec<Untracked>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StrategyReport {
    pub strategy: String,
    pub settings: LedgerSettings,
    pub figures: Figures,
    pub symbols: Vec<SymbolReport>,
    /// Every trade, closed ones in the order they closed, then the open ones.
    pub trades: Vec<TradeRow>,
    /// `(Unix ms, equity in quote)`, once a sampling period and at the end.
    pub equity: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SymbolReport {
    pub symbol: String,
    /// Whose prices marked it.
    pub market: Market,
    pub figures: Figures,
}

#[derive(Debug, Clone, Serialize)]
pub struct TradeRow {
    pub symbol: String,
    #[serde(flatten)]
    pub trade: Trade,
}

#[derive(Debug, Clone, Serialize)]
pub struct Untracked {
    pub strategy: String,
    pub symbol: String,
    pub signals: u64,
}

#[cfg(test)]
mod tests;
