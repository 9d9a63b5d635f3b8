//! sigcast: an authenticated trading-signal broadcast server.
//!
//! Data flows one way through four rooms; nothing reaches backwards, and only [`node`]
//! wires the rooms together (`tests/it/layers.rs` checks both):
//!
//! ```text
//!  market ──MarketEvent──▶ strategy ──Signal──▶ hub ──Frame──▶ server ──▶ clients
//!  (Binance live, replay,  (engine, built-ins, (serialize     (TLS, JWT in the
//!   synthetic)              exec plugins)        once, fan-out) handshake, sessions)
//!    │                             │              ▲
//!    │                             └──Signal──▶ backtest (evaluation, HTML report)
//!    └──MarketEvent (market-data topics)───────────┘
//! ```
//!
//! In cluster mode the hub's signals cross NATS JetStream: `hub ──▶ cluster (outbox) ──▶
//! stream ──▶ cluster (inlet) ──▶ hub` on every node, producers and edges alike; the leading
//! producer is the stream's one writer and seals what it appends.
//!
//! - [`node`]: one node assembled from its configuration: the pipeline runner, the cluster
//!   roles, hot reload of strategies and credentials, the revocation watch, the listeners.
//! - [`market`]: typed market events and the sources that produce them (Binance live with
//!   backfill, replay of recordings, synthetic); Binance's wire format lives in `market::binance`.
//! - [`strategy`]: deterministic strategies that turn events into [`strategy::Signal`]s,
//!   defined in `signals/*.toml`, with warm-up, hot reload and any-language plugins.
//! - [`ledger`]: each strategy's signals paper-traded per symbol (fees, slippage, long-only or
//!   long/short), marked to market for an equity curve, and the figures of its track record;
//!   the same in backtests and on a live server.
//! - [`backtest`]: the engine over recordings, with hit rates, the ledger's figures and a chart.
//! - [`hub`]: numbers, journals, signs and serializes each signal once and fans the same bytes
//!   out to every session; relays the market-data topics sessions subscribe to, conflated.
//! - [`cluster`]: cluster mode on NATS JetStream: the signal stream between producers and
//!   edges, sealed by the leader, resumes from it, the producers' leader lease, their
//!   journal keys and revocations in buckets.
//! - [`server`]: the TLS WebSocket listener, handshake authentication and client sessions.
//! - [`auth`]: JWT verification (key ring, pinned algorithms) and issuing.
//! - [`tls`] and [`devcert`]: loading PEM material and making development certificates.
//! - [`clock`]: wall-clock time in Unix seconds, as every room reads it.
//! - [`config`]: layered settings (file, `SIGCAST_*` environment, flags); [`db`]: the data
//!   directory's SQLite database (journal and token registry). With [`clock`] and [`tls`]
//!   these are the foundation: they name no other room.
//! - [`admin`]: the operators' plain-HTTP listener (`/metrics`, `/healthz`); [`logging`]: log
//!   lines written off the serving threads.
//! - [`loadgen`]: the load generator of `sigcast bench` (a client-side tool, no room).
//! - [`cli`]: the `sigcast` command line: parsing, and one call per subcommand.

pub mod admin;
pub mod auth;
pub mod backtest;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod db;
pub mod devcert;
pub mod hub;
pub mod ledger;
pub mod loadgen;
pub mod logging;
pub mod market;
pub mod node;
pub mod server;
pub mod strategy;
pub mod tls;
