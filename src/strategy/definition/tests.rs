//! Definitions read, checked and built: every mistake named with its file and block.

use super::*;

fn symbols() -> Vec<String> {
    ["BTCUSDT", "ETHUSDT", "SOLUSDT"].map(String::from).to_vec()
}

/// Every bad block of a file is reported, in file order, and the good ones still build.
#[test]
fn each_bad_block_is_a_problem_of_its_own() {
    let text = "[[strategy]]\nname = \"a\"\nkind = \"nope\"\nsymbol = \"BTCUSDT\"\ninterval = \"1s\"\n\n\
                [[strategy]]\nname = \"b\"\nkind = \"ma_cross\"\nsymbol = \"BTCUSDT\"\ninterval = \"7q\"\n\n\
                [[strategy]]\nkind = \"rsi\"\n\n\
                [[strategy]]\nname = \"ok\"\nkind = \"rsi\"\nsymbol = \"BTCUSDT\"\ninterval = \"1m\"\n";
    let mut problems = Vec::new();
    let built = build_text(
        Path::new("f.toml"),
        text,
        None,
        &mut Vec::new(),
        &mut problems,
    );
    assert_eq!(built.len(), 1);
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0].starts_with("f.toml: strategy \"a\": unknown variant `nope`"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("f.toml: strategy \"b\": interval"),
        "{lines:#?}"
    );
    assert_eq!(lines[2], "f.toml: [[strategy]] #3: missing field `name`");
    let mut problems = Vec::new();
    build_text(
        Path::new("f.toml"),
        "[[strategy]\n",
        None,
        &mut Vec::new(),
        &mut problems,
    );
    assert!(
        problems[0]
            .to_string()
            .starts_with("f.toml: line 1, column"),
        "{}",
        problems[0]
    );
}

#[test]
fn default_builds_one_instance_per_symbol() {
    let built = load(Path::new("/nonexistent/signals"), Some(&symbols())).unwrap();
    assert_eq!(built.len(), 3);
    assert_eq!(built[0].strategy.name(), "ma-fast");
    // Subscriptions follow from the strategies.
    let engine = crate::strategy::Engine::new(built);
    assert_eq!(
        engine.streams(),
        vec![
            (Market::Spot, "btcusdt@aggTrade".to_string()),
            (Market::Spot, "ethusdt@aggTrade".to_string()),
            (Market::Spot, "solusdt@aggTrade".to_string()),
        ]
    );
}

#[test]
fn every_kind_builds_with_defaults() {
    let kinds = [
        "ma_cross",
        "rsi",
        "bollinger",
        "macd",
        "donchian",
        "book_imbalance",
    ];
    let text: String = kinds
        .iter()
        .map(|k| format!("[[strategy]]\nname = \"{k}\"\nkind = \"{k}\"\nsymbol = \"BTCUSDT\"\ninterval = \"1m\"\n"))
        .collect();
    let built = from_text(&text).unwrap();
    assert_eq!(built.len(), kinds.len());
}

#[test]
fn errors_name_file_instance_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.toml");
    let cases = [
        (
            DEFAULT_DEFINITIONS.replace("slow = 8", "slow = 2"),
            "params.fast",
        ),
        (
            DEFAULT_DEFINITIONS.replace("\"SOLUSDT\"", "\"DOGEUSDT\""),
            "DOGEUSDT",
        ),
        (
            DEFAULT_DEFINITIONS.replace("interval = \"1s\"", "interval = \"1w\""),
            "interval",
        ),
        (
            DEFAULT_DEFINITIONS.replace("interval = \"1s\"", "interval = \"2m\""),
            "interval",
        ),
        (
            DEFAULT_DEFINITIONS.replace("fast = 3", "fast = 3\nfats = 1"),
            "fats",
        ),
        (
            DEFAULT_DEFINITIONS.replace("kind = \"ma_cross\"", "kind = \"magic\""),
            "magic",
        ),
        (
            DEFAULT_DEFINITIONS.replace("fast = 3", "fast = \"three\""),
            "params",
        ),
        (
            format!("{DEFAULT_DEFINITIONS}\n{DEFAULT_DEFINITIONS}"),
            "used twice",
        ),
    ];
    for (text, needle) in cases {
        std::fs::write(&f, text).unwrap();
        let err = load(dir.path(), Some(&symbols()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("a.toml") && err.contains(needle),
            "{needle}: {err}"
        );
    }
    // The instance is named where there is one.
    std::fs::write(&f, DEFAULT_DEFINITIONS.replace("slow = 8", "slow = 2")).unwrap();
    let err = load(dir.path(), Some(&symbols()))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("\"ma-fast\""), "{err}");
}

#[test]
fn disabled_instances_are_not_run() {
    let text =
        DEFAULT_DEFINITIONS.replace("interval = \"1s\"", "interval = \"1s\"\nenabled = false");
    let built = from_text(&text).unwrap();
    assert!(built.is_empty());
}
