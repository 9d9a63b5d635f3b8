//! Reading JSON-lines files a line at a time, each line bounded, for the commands that read
//! saved signals (`verify`, `performance --export`).

use std::io::{BufRead, Read};

/// Longest line read: far above any frame sigcast sends (its message limit is smaller).
pub const MAX_LINE: usize = 64 * 1024;

/// Calls `each` with every line of `input` (without its line break), or with `None` for a
/// line over [`MAX_LINE`] bytes, which is skipped without being held.
pub fn each_line(
    mut input: impl BufRead,
    mut each: impl FnMut(Option<&str>),
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if (&mut input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)?
            == 0
        {
            return Ok(());
        }
        if buf.len() > MAX_LINE {
            let mut rest = Vec::new();
            while !rest.ends_with(b"\n") {
                rest.clear();
                if (&mut input)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut rest)?
                    == 0
                {
                    break;
                }
            }
            each(None);
            continue;
        }
        let line = String::from_utf8_lossy(&buf);
        each(Some(line.trim_end_matches(['\r', '\n'])));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_whole_and_an_overlong_one_is_skipped() {
        let long = "x".repeat(MAX_LINE * 3);
        let text = format!("a\r\n{long}\nb\nc");
        let mut seen = Vec::new();
        each_line(text.as_bytes(), |l| seen.push(l.map(str::to_string))).unwrap();
        assert_eq!(
            seen,
            vec![Some("a".into()), None, Some("b".into()), Some("c".into())]
        );
    }
}
