//! `sigcast performance`: the track record as a table, from a running server's
//! `GET /v1/performance`, from a backtest's `report.json`, or offline from a journal.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use super::settings::SettingsArgs;
use crate::config::Overrides;
use crate::hub::{journal, track};
use crate::ledger::{self, Ledger};
use crate::strategy::definition;

/// Show the track record (every strategy's signals paper-traded): from a running server, a
/// backtest's report.json, or a server's journal (offline).
#[derive(Debug, Args)]
pub struct Performance {
    /// The server's client address, e.g. https://127.0.0.1:8443.
    #[arg(long, value_name = "URL", required_unless_present_any = ["report", "journal"])]
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
    /// configuration's [ledger] and the definitions in signals.dir; each signal's price marks
    /// its symbol, as after a restart.
    #[arg(long, value_name = "DB", conflicts_with = "url")]
    journal: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Print the JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Performance) -> anyhow::Result<ExitCode> {
    let text = match (&args.report, &args.journal, &args.url) {
        (Some(file), _, _) => std::fs::read_to_string(file)
            .with_context(|| format!("--report: cannot read {}", file.display()))?,
        (None, Some(db), _) => from_journal(db, &args.settings)?,
        (None, None, Some(url)) => super::runtime()?.block_on(ask(url, &args))?,
        (None, None, None) => {
            bail!("give --url (a running server), --report (a backtest's) or --journal")
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

/// The journal's signals paper-traded again, as the report's JSON.
fn from_journal(db: &Path, settings: &SettingsArgs) -> anyhow::Result<String> {
    if !db.is_file() {
        bail!("--journal: no journal at {}", db.display());
    }
    let config = settings.load(Overrides::default())?;
    let instances = definition::load(&config.signals.dir, None)?;
    let mut ledger = Ledger::new(config.ledger, ledger::rules(&instances, &config.ledger));
    let mut after = 0;
    loop {
        let (page, _) = journal::read_file(db, after, i64::MAX as u64)
            .with_context(|| format!("--journal: cannot read {}", db.display()))?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.seq;
        track::replay(&mut ledger, &page);
    }
    Ok(serde_json::to_string(&ledger.report())?)
}

/// `GET <url>/v1/performance` with the token.
async fn ask(url: &str, args: &Performance) -> anyhow::Result<String> {
    let Some(token) = &args.token else {
        bail!("--token (or SIGCAST_TOKEN) is needed to ask a server");
    };
    get(url, "/v1/performance", Some(token), args.ca.as_ref()).await
}

/// The body of `GET <url><path>` (with a bearer `token` when given), trusting `ca` if given;
/// a status other than 2xx is an error naming it.
pub(super) async fn get(
    url: &str,
    path: &str,
    token: Option<&str>,
    ca: Option<&PathBuf>,
) -> anyhow::Result<String> {
    let tls = crate::client::tls_config(ca).map_err(anyhow::Error::msg)?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .context("cannot make an HTTP client")?;
    let target = format!("{}{path}", url.trim_end_matches('/'));
    let mut request = http.get(&target);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    let status = response.status();
    let body = response.text().await.context("the answer broke off")?;
    if !status.is_success() {
        bail!("{target}: {status}: {}", body.trim());
    }
    Ok(body)
}
