//! `sigcast journal key|export|rotate`: the journal key's public halves, the signed history
//! as JSON lines (from the data directory or a running server), and key rotation.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::https::{get, journal_keys};
use super::settings::SettingsArgs;
use crate::config::Overrides;
use crate::hub::journal;
use crate::hub::proof::KeyDir;

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Print the journal's public keys as JSON (what GET /v1/journal/key serves): the data
    /// directory's, or a running server's with --url.
    Key(Key),
    /// Print the signed signals as JSON lines, one frame a line as clients receive it: from
    /// the data directory's journal, or from a running server with --url (scope-filtered by
    /// the token). `sigcast verify` checks the output.
    Export(Export),
    /// Retire the journal key (its public half stays, so older signals still verify) and
    /// make a new one; a running server signs with it after SIGHUP or a restart.
    Rotate(Rotate),
}

#[derive(Debug, Args)]
pub struct Key {
    /// A running server's client address, e.g. https://127.0.0.1:8443.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// A CA certificate (PEM) to trust instead of the public roots, e.g. certs/cert.pem.
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingsArgs,
}

#[derive(Debug, Args)]
pub struct Export {
    /// The first seq (default: the oldest kept).
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// The last seq (default: the newest).
    #[arg(long)]
    to: Option<u64>,
    /// A running server's client address, e.g. https://127.0.0.1:8443.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// A bearer token the server accepts (default: $SIGCAST_TOKEN).
    #[arg(long, env = "SIGCAST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A CA certificate (PEM) to trust instead of the public roots.
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingsArgs,
}

#[derive(Debug, Args)]
pub struct Rotate {
    #[command(flatten)]
    settings: SettingsArgs,
}

pub fn run(command: JournalCommand) -> anyhow::Result<ExitCode> {
    match command {
        JournalCommand::Key(args) => {
            let text = match &args.url {
                Some(url) => journal_keys(url, args.ca.as_ref())?,
                None => {
                    let config = args.settings.load(Overrides::default())?;
                    let keys = KeyDir::of(&config.data.dir);
                    if !keys.current_path().exists() {
                        bail!(
                            "no journal key at {} yet: `sigcast init` or the server's first start makes it",
                            keys.current_path().display()
                        );
                    }
                    serde_json::to_string_pretty(&keys.public_keys()?)?
                }
            };
            super::emit(&format!("{}\n", text.trim_end()))?;
        }
        JournalCommand::Export(args) => export(&args)?,
        JournalCommand::Rotate(args) => {
            let config = args.settings.load(Overrides::default())?;
            let (old, new) = KeyDir::of(&config.data.dir).rotate()?;
            eprintln!(
                "sigcast: journal key {old} retired (its public half stays); {new} signs after SIGHUP or a restart"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn export(args: &Export) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut write = |frame: &[u8]| -> anyhow::Result<bool> {
        match out.write_all(frame).and_then(|()| out.write_all(b"\n")) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            done => Ok(done.map(|()| true)?),
        }
    };
    let mut after = args.from.saturating_sub(1);
    // SQLite's integers are signed: the newest seq is below this.
    let to = args.to.unwrap_or(i64::MAX as u64).min(i64::MAX as u64);
    match &args.url {
        None => {
            let config = args.settings.load(Overrides::default())?;
            let db = config.data.journal_path();
            if !db.is_file() {
                bail!("no journal at {}", db.display());
            }
            while after < to {
                let (page, _) = journal::read_file(&db, after, to)
                    .with_context(|| format!("cannot read {}", db.display()))?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for p in &page {
                    if !write(p.frame.as_bytes())? {
                        return Ok(());
                    }
                }
            }
        }
        Some(url) => {
            let Some(token) = &args.token else {
                bail!("--token (or SIGCAST_TOKEN) is needed to ask a server");
            };
            let runtime = super::runtime()?;
            // Pages of the server's size: each next one from after the last line taken.
            while after < to {
                let path = format!(
                    "{}?from={}&to={to}",
                    crate::server::journal::PATH,
                    after + 1
                );
                let answer = runtime.block_on(get(url, &path, Some(token), args.ca.as_ref()))?;
                let mut last = None;
                for line in answer.body.lines() {
                    last = seq_of(line).or(last);
                    if !write(line.as_bytes())? {
                        return Ok(());
                    }
                }
                // The server says where to go on when it stopped short (a full page, or as
                // many signals looked at as one answer may: an empty page then, for a
                // narrowly scoped token).
                match (answer.next_from, last) {
                    (Some(next), _) if next > after + 1 => after = next - 1,
                    (None, Some(seq)) if seq > after => after = seq,
                    _ => break,
                }
            }
        }
    }
    out.flush().or_else(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Ok(()),
        _ => Err(e),
    })?;
    Ok(())
}

fn seq_of(line: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(line).ok()?["seq"].as_u64()
}
