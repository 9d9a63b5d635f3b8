//! The commands the README and docs/ show: every `sigcast` line parses with today's command
//! line (the ones a newcomer runs first are run as written by `tests/it/docs.rs`).

use std::path::{Path, PathBuf};

use super::accepts;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every file of docs/.
fn documents() -> Vec<PathBuf> {
    let mut all = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    all.extend(docs);
    all
}

/// The lines of a document's shell blocks (```sh), each with its file and line number,
/// without comments.
fn shell_lines(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.strip_prefix(root()).unwrap().display().to_string();
    let mut lines = Vec::new();
    let mut in_shell = false;
    let mut joined = String::new();
    for (n, line) in text.lines().enumerate() {
        if let Some(info) = line.strip_prefix("```") {
            in_shell = !in_shell && matches!(info.trim(), "sh" | "bash" | "shell");
            continue;
        }
        if !in_shell {
            continue;
        }
        let code = match line.find(" #") {
            Some(at) => &line[..at],
            None => line,
        };
        joined.push_str(code.trim_end());
        if joined.ends_with('\\') {
            joined.pop();
            continue;
        }
        let whole = std::mem::take(&mut joined);
        if !whole.trim().is_empty() {
            lines.push((format!("{name}:{}", n + 1), whole.trim().to_string()));
        }
    }
    lines
}

/// Splits a shell line into words: quotes group, `$VAR`s stay as written.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (_, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// `sigcast`'s arguments in a shell line (after any `VAR=value`), when it runs sigcast.
fn sigcast_args(line: &str) -> Option<Vec<String>> {
    let mut words = words(line).into_iter().skip_while(|w| {
        w.split_once('=').is_some_and(|(var, _)| {
            !var.is_empty() && var.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
    });
    match words.next().as_deref() {
        // The command's own words end where the shell takes over: a redirection, a pipe,
        // a comment.
        Some("sigcast") => Some(
            words
                .take_while(|w| !matches!(w.as_str(), ">" | ">>" | "<" | "|" | "&&" | "#"))
                .collect(),
        ),
        _ => None,
    }
}

#[test]
fn every_sigcast_command_shown_parses() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for doc in documents() {
        for (at, line) in shell_lines(&doc) {
            let Some(args) = sigcast_args(&line) else {
                continue;
            };
            checked += 1;
            if let Err(e) = accepts(&args) {
                let first = e.lines().next().unwrap_or_default().to_string();
                broken.push(format!("{at}: {line}\n    {first}"));
            }
        }
    }
    assert!(
        checked >= 15,
        "only {checked} sigcast commands found in the docs"
    );
    assert!(
        broken.is_empty(),
        "commands the CLI refuses:\n{}",
        broken.join("\n")
    );
}

/// The check sees a broken command as broken.
#[test]
fn the_check_refuses_what_the_cli_refuses() {
    let args = sigcast_args("SIGCAST_TOKEN=x sigcast backtest --signals signals").unwrap();
    assert_eq!(args, ["backtest", "--signals", "signals"]);
    assert!(accepts(&args).is_err(), "--data is required");
    assert!(accepts(["token", "issue", "--sub", "a b"]).is_ok());
    assert_eq!(words(r#"a "b c" 'd'"e""#), ["a", "b c", "de"]);
}
