//! The house's one-way flow, checked on the source: `market` → `strategy` → `ledger` → `hub`
//! → `server`.
//! A file of one of these rooms names only rooms before its own, never one after it; the
//! foundation rooms (`clock`, `config`, `db`, `tls`) name only each other; `node`, which
//! assembles the pipeline, is named only by `cli`; and no library room names `cli`, which
//! only parses and calls.

use std::path::{Path, PathBuf};

/// The rooms data flows through, in order.
const FLOW: [&str; 5] = ["market", "strategy", "ledger", "hub", "server"];
/// The rooms every other room may read, which themselves read only each other.
const FOUNDATION: [&str; 4] = ["clock", "config", "db", "tls"];

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The rooms a file names as `crate::<room>`, with the line each is on.
fn named_rooms(text: &str) -> Vec<(String, usize)> {
    let mut named = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for part in code.split("crate::").skip(1) {
            let room: String = if part.starts_with('{') {
                "{".into()
            } else {
                part.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            };
            named.push((room, n + 1));
        }
    }
    named
}

/// The room a file under `src/` belongs to: its first path component, without `.rs`.
fn room_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

#[test]
fn no_room_reaches_backwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut backwards = Vec::new();
    for file in sources(&src) {
        let room = room_of(&src, &file);
        if matches!(room.as_str(), "cli" | "main" | "lib") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let position = FLOW.iter().position(|r| *r == room);
        for (named, line) in named_rooms(&text) {
            let at = file.strip_prefix(&src).unwrap().display();
            if named.starts_with('{') {
                backwards.push(format!(
                    "src/{at}:{line}: `crate::{{...}}`: name each room in a `use` of its own"
                ));
                continue;
            }
            let later = position.is_some_and(|mine| {
                FLOW.iter()
                    .position(|r| *r == named)
                    .is_some_and(|theirs| theirs > mine)
            });
            let above_foundation =
                FOUNDATION.contains(&room.as_str()) && !FOUNDATION.contains(&named.as_str());
            let assembly = named == "cli" || (named == "node" && room != "node");
            if later || above_foundation || assembly {
                backwards.push(format!("src/{at}:{line}: {room} names crate::{named}"));
            }
        }
    }
    assert!(
        backwards.is_empty(),
        "rooms reaching backwards (the flow is {}; {} name only each other; node is named \
         only by cli, cli by none):\n{}",
        FLOW.join(" -> "),
        FOUNDATION.join(", "),
        backwards.join("\n")
    );
}

/// The check itself sees what it must: a later room, `cli`, a braced group, and not a
/// room named only in a comment.
#[test]
fn the_check_reads_names_and_skips_comments() {
    let text =
        "use crate::server::Shared;\nlet x = crate::cli::run(); // crate::hub\nuse crate::{a, b};";
    let named: Vec<String> = named_rooms(text).into_iter().map(|(r, _)| r).collect();
    assert_eq!(named, ["server", "cli", "{"]);
}
