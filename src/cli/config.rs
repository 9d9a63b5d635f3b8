//! `sigcast config check|show|keys`: every problem of a configuration, the effective one,
//! and the reference of every key.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::emit;
use super::settings::SettingsArgs;
use crate::config::Overrides;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration (FILE, or --config, or ./sigcast.toml) with its env and flags,
    /// keys, certificate, signals/ and recordings; print every problem, each with its key,
    /// and exit 1 if there is any.
    Check {
        /// The config file to check (instead of --config).
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Print the effective configuration (file, then env, then flags) as TOML.
    Show {
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List every setting with its environment variable and default.
    Keys,
}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Check { file, settings } => {
            let problems = settings.problems(file.as_deref());
            if problems.is_empty() {
                println!("configuration OK");
                return Ok(ExitCode::SUCCESS);
            }
            for problem in &problems {
                eprintln!("sigcast: config: {problem}");
            }
            eprintln!("sigcast: {} problem(s) found", problems.len());
            Ok(ExitCode::FAILURE)
        }
        ConfigCommand::Show { settings } => {
            let config = settings.load(Overrides::default())?;
            emit(&config.to_toml())?;
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Keys => {
            emit(&crate::config::reference())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
