//! What a client's text message asks for: `test`, or one of the JSON commands of the
//! command protocol (`ping`, `subscribe`, `unsubscribe`, `publish`, `resume`).

use serde_json::Value;

/// One client message, understood.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Synthetic `is_test` signals for this client.
    Test,
    /// `{"type":"ping"}`: answered with a `pong`.
    Ping,
    /// `{"type":"subscribe","topic":...}`: the topic text, not yet checked.
    Subscribe(String),
    /// `{"type":"unsubscribe","topic":...}`.
    Unsubscribe(String),
    /// `{"type":"publish","id":"...","signal":{...}}`: the signal body, if given, and the
    /// publisher's idempotency key, if given (publisher tokens only).
    Publish {
        signal: Option<Value>,
        id: Option<Value>,
    },
    /// `{"type":"resume","since":N}`: every signal after `seq` N.
    Resume(u64),
    /// Not understood: the `invalid_message` error's text.
    Invalid(String),
}

/// Reads one text message (already trimmed of surrounding whitespace).
pub fn parse(text: &str) -> Command {
    if text == "test" {
        return Command::Test;
    }
    if !text.starts_with('{') {
        let shown: String = text.chars().take(32).collect();
        return Command::Invalid(format!(
            "unknown command {shown:?}; send \"test\", or a JSON command (subscribe, unsubscribe, ping, resume)"
        ));
    }
    let command: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Command::Invalid(format!(
                "not a JSON command ({e}); send \"test\" or one like {{\"type\":\"ping\"}}"
            ));
        }
    };
    let topic = command
        .get("topic")
        .and_then(Value::as_str)
        .map(String::from);
    match command.get("type").and_then(Value::as_str) {
        Some("ping") => Command::Ping,
        Some(kind @ ("subscribe" | "unsubscribe")) => match topic {
            None => Command::Invalid(format!("{kind}: give a topic")),
            Some(topic) if kind == "subscribe" => Command::Subscribe(topic),
            Some(topic) => Command::Unsubscribe(topic),
        },
        Some("publish") => Command::Publish {
            signal: command.get("signal").cloned(),
            id: command.get("id").cloned(),
        },
        Some("resume") => match command.get("since").and_then(Value::as_u64) {
            Some(since) => Command::Resume(since),
            None => Command::Invalid(
                "resume: `since` must be the last seq received, a whole number".into(),
            ),
        },
        other => Command::Invalid(format!("unknown command type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_command() {
        assert_eq!(parse("test"), Command::Test);
        assert_eq!(parse(r#"{"type":"ping"}"#), Command::Ping);
        assert_eq!(
            parse(r#"{"type":"subscribe","topic":"signals:BTCUSDT"}"#),
            Command::Subscribe("signals:BTCUSDT".into())
        );
        assert_eq!(
            parse(r#"{"type":"unsubscribe","topic":"x"}"#),
            Command::Unsubscribe("x".into())
        );
        assert_eq!(
            parse(r#"{"type":"resume","since":42}"#),
            Command::Resume(42)
        );
        assert_eq!(
            parse(r#"{"type":"publish","signal":{"a":1}}"#),
            Command::Publish {
                signal: Some(serde_json::json!({"a":1})),
                id: None
            }
        );
        assert_eq!(
            parse(r#"{"type":"publish","id":"k1"}"#),
            Command::Publish {
                signal: None,
                id: Some(serde_json::json!("k1"))
            }
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let invalid = |text: &str| match parse(text) {
            Command::Invalid(message) => message,
            other => panic!("{text}: {other:?}"),
        };
        assert!(invalid("hello").contains("unknown command \"hello\""));
        assert!(invalid("{not json").contains("not a JSON command"));
        assert!(invalid(r#"{"type":"subscribe"}"#).contains("give a topic"));
        assert!(invalid(r#"{"type":"resume","since":-1}"#).contains("whole number"));
        assert!(invalid(r#"{"type":"dance"}"#).contains("unknown command type"));
        assert!(invalid("TEST").contains("unknown command"));
    }
}
