//! `sigcast performance`: the track record as a table, from a running server's
//! `GET /v1/performance`, from a backtest's `report.json`, or offline from a journal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use super::https;
use super::settings::SettingsArgs;
use crate::config::Overrides;
use crate::hub::{journal, track};
use crate::ledger::{self, Ledger};
use crate::strategy::definition;

/// Show the track record (every strategy's signals paper-traded): from a running server, a
/// backtest's report.json, or offline from a server's journal or a journal export.
#[derive(Debug, Args)]
pub struct Performance {
    /// The server's client address, e.g. https://127.0.0.1:8443.
    #[arg(long, value_name = "URL", required_unless_present_any = ["report", "journal", "export"])]
    url: Option<String>,
    /// A bearer token the server accepts (default: $SIGCAST_TOKEN).
    #[arg(long, env = "SIGCAST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A CA certificate (PEM) to trust instead of the public roots, e.g. certs/cert.pem.
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// A backtest's report.json instead of a server.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["url", "journal"])]
    report: Option<PathBuf>,
    /// A server's journal (data.dir's sigcast.db), its signals paper-traded again by the
    /// configuration's [ledger] and the definitions in signals.dir, among the market prices
    /// the server kept beside them, as after a restart.
    #[arg(long, value_name = "DB", conflicts_with_all = ["url", "export"])]
    journal: Option<PathBuf>,
    /// Signals as JSON lines (`sigcast journal export`, `GET /v1/journal`, a `sigcast listen`
    /// output), paper-traded as --journal's are. `sigcast verify --track-record` does the
    /// same for the signals whose signatures hold.
    #[arg(long, value_name = "FILE", conflicts_with = "url")]
    export: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Print the JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Performance) -> anyhow::Result<ExitCode> {
    let text = match (&args.report, &args.journal, &args.export, &args.url) {
        (Some(file), _, _, _) => std::fs::read_to_string(file)
            .with_context(|| format!("--report: cannot read {}", file.display()))?,
        (None, Some(db), _, _) => from_journal(db, &args.settings)?,
        (None, None, Some(file), _) => from_export(file, &args.settings)?,
        (None, None, None, Some(url)) => super::runtime()?.block_on(ask(url, &args))?,
        (None, None, None, None) => {
            bail!("give --url (a running server), --report (a backtest's), --journal or --export")
        }
    };
    let report: serde_json::Value =
        serde_json::from_str(&text).context("the track record is not JSON")?;
    if args.json {
        println!("{report:#}");
    } else {
        print!("{}", ledger::table::text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// A ledger trading by the configuration's [ledger] and its definitions' rules.
fn configured(settings: &SettingsArgs) -> anyhow::Result<Ledger> {
    let config = settings.load(Overrides::default())?;
    let instances = definition::load(&config.signals.dir, None)?;
    Ok(Ledger::new(ledger::rules(&instances, &config.ledger)))
}

/// Exported signals paper-traded again, as the report's JSON.
fn from_export(file: &Path, settings: &SettingsArgs) -> anyhow::Result<String> {
    let read = std::fs::File::open(file)
        .with_context(|| format!("--export: cannot read {}", file.display()))?;
    let mut ledger = configured(settings)?;
    // A line that is no frame (over-long, not JSON, without a seq) is not a signal.
    super::lines::each_line(std::io::BufReader::new(read), |line| {
        let Some(line) = line else { return };
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(line) else {
            return;
        };
        if let Some(seq) = frame["seq"].as_u64() {
            track::replay_frame(&mut ledger, seq, line);
        }
    })
    .with_context(|| format!("--export: cannot read {}", file.display()))?;
    Ok(serde_json::to_string(&ledger.report())?)
}

/// The journal's signals paper-traded again, as the report's JSON.
fn from_journal(db: &Path, settings: &SettingsArgs) -> anyhow::Result<String> {
    if !db.is_file() {
        bail!("--journal: no journal at {}", db.display());
    }
    let mut ledger = configured(settings)?;
    let cannot = || format!("--journal: cannot read {}", db.display());
    let mut replay = track::Replay::default();
    let mut after = 0;
    loop {
        let (page, _) = journal::read_file(db, after, i64::MAX as u64).with_context(cannot)?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.seq;
        for p in &page {
            while !replay.restore_before(&mut ledger, p.seq) {
                replay.add(
                    journal::read_checkpoints_file(db, replay.after_id()).with_context(cannot)?,
                );
            }
            replay.signal(&mut ledger, p.seq, p.frame.as_str());
        }
    }
    while !replay.restore_before(&mut ledger, u64::MAX) {
        replay.add(journal::read_checkpoints_file(db, replay.after_id()).with_context(cannot)?);
    }
    Ok(serde_json::to_string(&ledger.report())?)
}

/// `GET <url>/v1/performance` with the token.
async fn ask(url: &str, args: &Performance) -> anyhow::Result<String> {
    let Some(token) = &args.token else {
        bail!("--token (or SIGCAST_TOKEN) is needed to ask a server");
    };
    let answer = https::get(url, "/v1/performance", Some(token), args.ca.as_ref()).await?;
    Ok(answer.body)
}
