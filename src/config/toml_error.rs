//! TOML errors on one line that says where: `line 3, column 17: <what is wrong>`.

/// `e`'s message with the line and column of its span in `text`, on one line (toml's own
/// text draws the line with a caret over several lines, which a one-line error flattens into
/// noise).
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_names_its_line_and_column_on_one_line() {
        let text = "[server]\nlisten = \"x\"\nping_interval = \n";
        let e = text.parse::<toml::Table>().unwrap_err();
        let line = toml_error(text, &e);
        assert!(line.starts_with("line 3, column 17: "), "{line}");
        assert!(!line.contains('\n') && !line.contains(" | "), "{line}");
    }
}
