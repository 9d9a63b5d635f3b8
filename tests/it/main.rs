//! sigcast's integration tests, one module per subject, in one binary: the crate and its
//! dependencies are linked once rather than once per file. Every module starts real servers
//! (in this process, or `sigcast` itself as a child) on port 0 with certificates made at test
//! time, and talks to them with real clients. The soak (`tests/soak.rs`) is a target of its
//! own: `scripts/test` runs it built in release.
//!
//! `cargo test --test it cli::` runs one module; `SIGCAST_TEST_BIN=<a sigcast binary>` runs
//! the tests that start `sigcast` as a child against another build.

#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod admin;
mod auth;
mod cli;
mod clients;
mod cluster;
mod conformance;
mod dashboard;
mod deploy;
mod docs;
mod durability;
mod engine_live;
mod indicators_match_talib;
mod journal;
mod jwt_attacks;
mod klines_match_binance;
mod layers;
mod listen;
mod loadgen;
mod market_topics;
mod plugins;
mod properties;
mod sessions;
mod tls;
mod tls_adversarial;
mod tls_scan;
mod topics;
mod track_record;
mod upstream;
mod verify;
