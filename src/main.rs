//! The `sigcast` binary: a thin shell around [`sigcast::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    sigcast::cli::main()
}
