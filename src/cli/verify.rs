//! `sigcast verify FILE`: checks signed signals as they were saved (a `sigcast listen`
//! output, a journal export, a client's log of frames) and says what held and what failed.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use super::https::journal_keys;
use super::lines::{MAX_LINE, each_line};
use super::settings::SettingsArgs;
use crate::config::Overrides;
use crate::hub::proof::verify::Verifier;
use crate::hub::proof::{KeyDir, KeySet};
use crate::hub::track;
use crate::ledger::{self, Ledger};

/// Check a file of signed signals: every signature, and the chain from each seq to the
/// next (a missing, inserted, reordered or edited signal is named by its seq). Exits 1 when
/// anything failed.
#[derive(Debug, Args)]
pub struct Verify {
    /// The file: JSON lines, one frame a line, as received ("-" reads stdin).
    file: PathBuf,
    /// The public keys as JSON (GET /v1/journal/key's or `sigcast journal key`'s output).
    #[arg(long, value_name = "FILE", conflicts_with = "url")]
    keys: Option<PathBuf>,
    /// Take the public keys from a running server, e.g. https://127.0.0.1:8443.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// A CA certificate (PEM) to trust for --url instead of the public roots.
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// The file holds what a scoped token sees: gaps in seq are expected and reported, and
    /// the chain is checked between consecutive signals only.
    #[arg(long)]
    scoped: bool,
    /// Recompute the track record from the signals that verified (each signal's price marks
    /// its symbol), by the configuration's [ledger] rules.
    #[arg(long)]
    track_record: bool,
    /// Print what was checked as one JSON object (signals, verified, first_seq, last_seq,
    /// chain_start, kids, gaps, problems, passed) instead of the text.
    #[arg(long)]
    json: bool,
    /// Without --keys or --url: the configuration whose data directory holds the keys, and
    /// whose [ledger] --track-record uses.
    #[command(flatten)]
    settings: SettingsArgs,
}

pub fn run(args: Verify) -> anyhow::Result<ExitCode> {
    let keys = keys(&args)?;
    let input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut verifier = Verifier::new(&keys, args.scoped);
    let mut ledger = args
        .track_record
        .then(|| -> anyhow::Result<Ledger> {
            let config = args.settings.load(Overrides::default())?;
            Ok(Ledger::new(ledger::Rules::uniform(config.ledger)))
        })
        .transpose()?;
    each_line(input, |line| match line {
        None => verifier.oversized(MAX_LINE),
        Some(line) => {
            if let (Some(verified), Some(ledger)) = (verifier.line(line), &mut ledger) {
                track::replay_frame(ledger, verified.seq, &verified.canonical);
            }
        }
    })
    .with_context(|| format!("cannot read {}", args.file.display()))?;
    let verdict = verifier.finish();
    let report = ledger
        .map(|l| serde_json::to_value(l.report()))
        .transpose()?;
    if args.json {
        let mut out = serde_json::to_value(&verdict)?;
        out["passed"] = verdict.passed().into();
        if let Some(report) = report {
            out["track_record"] = report;
        }
        println!("{out}");
        return Ok(if verdict.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!("sigcast verify: {}", args.file.display());
    print!("{verdict}");
    if let Some(report) = report {
        println!();
        print!("{}", ledger::table::text(&report));
    }
    if verdict.passed() {
        println!("OK: every signature holds and the chain is unbroken where it can be checked");
        Ok(ExitCode::SUCCESS)
    } else {
        if verdict.verified == 0 && verdict.problems.is_empty() {
            println!("FAILED: no signed signal in the file");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// The public keys: from --keys, from a server (--url), or from the data directory.
fn keys(args: &Verify) -> anyhow::Result<KeySet> {
    let text = match (&args.keys, &args.url) {
        (Some(file), _) => std::fs::read_to_string(file)
            .with_context(|| format!("--keys: cannot read {}", file.display()))?,
        (None, Some(url)) => journal_keys(url, args.ca.as_ref())?,
        (None, None) => {
            let config = args.settings.load(Overrides::default())?;
            let dir = KeyDir::of(&config.data.dir);
            if !dir.current_path().exists() {
                bail!(
                    "no keys given: --keys FILE (from `sigcast journal key` or GET /v1/journal/key) or --url"
                );
            }
            return Ok(dir.public_keys()?);
        }
    };
    serde_json::from_str(&text).context("the keys are not {\"keys\":[...]} JSON")
}
