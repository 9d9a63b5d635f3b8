//! `sigcast performance`: the track record as a table, from a running server's
//! `GET /v1/performance` or from a backtest's `report.json`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::ledger;

/// Show the track record (every strategy's signals paper-traded): from a running server, or
/// from a backtest's report.json.
#[derive(Debug, Args)]
pub struct Performance {
    /// The server's client address, e.g. https://127.0.0.1:8443.
    #[arg(long, value_name = "URL", required_unless_present = "report")]
    url: Option<String>,
    /// A bearer token the server accepts (default: $SIGCAST_TOKEN).
    #[arg(long, env = "SIGCAST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A CA certificate (PEM) to trust instead of the public roots, e.g. certs/cert.pem.
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// A backtest's report.json instead of a server.
    #[arg(long, value_name = "FILE", conflicts_with = "url")]
    report: Option<PathBuf>,
    /// Print the JSON instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Performance) -> anyhow::Result<ExitCode> {
    let text = match (&args.report, &args.url) {
        (Some(file), _) => std::fs::read_to_string(file)
            .with_context(|| format!("--report: cannot read {}", file.display()))?,
        (None, Some(url)) => super::runtime()?.block_on(ask(url, &args))?,
        (None, None) => bail!("give --url (a running server) or --report (a backtest's)"),
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

/// `GET <url>/v1/performance` with the token.
async fn ask(url: &str, args: &Performance) -> anyhow::Result<String> {
    let Some(token) = &args.token else {
        bail!("--token (or SIGCAST_TOKEN) is needed to ask a server");
    };
    let tls = crate::client::tls_config(args.ca.as_ref()).map_err(anyhow::Error::msg)?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .context("cannot make an HTTP client")?;
    let target = format!("{}/v1/performance", url.trim_end_matches('/'));
    let response = http
        .get(&target)
        .bearer_auth(token)
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
