//! Filebeat events: the JSON object Filebeat's Kafka output writes around each log line.
//!
//! Contract:
//! - Keys in any order; unknown keys skipped without being built. Read: `message` (the line),
//!   `log.file.path`, `log.offset`, `host.name`, `agent.id` (7.x, 8.x), and the 5.x/6.x
//!   `beat.hostname`/`beat.name`, `source`, `offset` at the top level. `host` may be an object
//!   (6.3+) or a string (some shippers). `@timestamp` is ignored: it is the read time.
//! - Strings borrow from the payload unless they contain JSON escapes. `message` (which holds
//!   escaped quotes in practice) is copied into the caller's reusable buffer instead of a fresh
//!   `String`; serde_json still allocates its own scratch space for escaped text.
//! - `Origin` is set only when the shipper, the path and the offset are all present: anything
//!   less cannot identify a line for de-duplication.
//! - An object without `message` is [`EnvelopeError::NoMessage`] (the caller decides whether it
//!   is an nginx JSON line instead).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use thiserror::Error;

use crate::record::Origin;

/// A decoded Filebeat event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// The log line (`message`).
    pub line: &'a str,
    pub origin: Option<Origin<'a>>,
}

#[derive(Debug, Error)]
pub enum EnvelopeError {
    #[error("invalid json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("json object has no message")]
    NoMessage,
}

/// Where `message` ended up: borrowed from the payload, or unescaped into the scratch buffer.
enum Message<'de> {
    Borrowed(&'de str),
    InScratch,
}

/// Deserialises a JSON string into the scratch buffer unless it can be borrowed.
struct MessageSeed<'s>(&'s mut String);

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = Message<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Message<'de>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("message as a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Message<'de>, E> {
        Ok(Message::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Message<'de>, E> {
        self.0.clear();
        self.0.push_str(text);
        Ok(Message::InScratch)
    }
}

/// A JSON string, borrowed from the payload unless it has escapes. (`Cow<str>`'s own
/// `Deserialize` always allocates, even with `#[serde(borrow)]` when wrapped in an `Option`.)
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(text)))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }

        deserializer.deserialize_str(TextVisitor)
    }
}

fn text(value: Option<Text<'_>>) -> Option<Cow<'_, str>> {
    value.map(|text| text.0)
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Message,
    Log,
    Host,
    Agent,
    Beat,
    Source,
    Offset,
    #[serde(other)]
    Other,
}

#[derive(Default, Deserialize)]
struct LogMeta<'a> {
    #[serde(borrow, default)]
    file: Option<FileMeta<'a>>,
    #[serde(default)]
    offset: Option<u64>,
}

#[derive(Default, Deserialize)]
struct FileMeta<'a> {
    #[serde(borrow, default)]
    path: Option<Text<'a>>,
}

#[derive(Default, Deserialize)]
struct AgentMeta<'a> {
    #[serde(borrow, default)]
    id: Option<Text<'a>>,
}

#[derive(Default, Deserialize)]
struct BeatMeta<'a> {
    #[serde(borrow, default)]
    hostname: Option<Text<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
}

/// `host`: `{"name": ...}` since Filebeat 6.3, a plain string from some other shippers.
struct HostName<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for HostName<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HostVisitor;

        impl<'de> Visitor<'de> for HostVisitor {
            type Value = HostName<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("host as an object or a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(HostName(Some(Cow::Borrowed(text))))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(HostName(Some(Cow::Owned(text.to_owned()))))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if key.0 == "name" {
                        name = text(map.next_value::<Option<Text<'de>>>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(HostName(name))
            }
        }

        deserializer.deserialize_any(HostVisitor)
    }
}

/// The parts of an event we read, before they are resolved into an [`Event`].
#[derive(Default)]
struct RawEvent<'de> {
    message: Option<Message<'de>>,
    log: LogMeta<'de>,
    host: Option<Cow<'de, str>>,
    agent: AgentMeta<'de>,
    beat: BeatMeta<'de>,
    source: Option<Text<'de>>,
    offset: Option<u64>,
}

struct EventVisitor<'s>(&'s mut String);

impl<'de> Visitor<'de> for EventVisitor<'_> {
    type Value = RawEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a filebeat event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent<'de>, A::Error> {
        let mut event = RawEvent::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Message => event.message = Some(map.next_value_seed(MessageSeed(&mut *self.0))?),
                Key::Log => event.log = map.next_value::<Option<LogMeta<'de>>>()?.unwrap_or_default(),
                Key::Host => event.host = map.next_value::<Option<HostName<'de>>>()?.and_then(|host| host.0),
                Key::Agent => event.agent = map.next_value::<Option<AgentMeta<'de>>>()?.unwrap_or_default(),
                Key::Beat => event.beat = map.next_value::<Option<BeatMeta<'de>>>()?.unwrap_or_default(),
                Key::Source => event.source = map.next_value()?,
                Key::Offset => event.offset = map.next_value()?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(event)
    }
}

/// Decodes a Filebeat event; `scratch` holds `message` when it had to be unescaped.
pub fn decode<'a>(json: &'a [u8], scratch: &'a mut String) -> Result<Event<'a>, EnvelopeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let raw = deserializer.deserialize_map(EventVisitor(&mut *scratch))?;
    deserializer.end()?;
    let scratch: &'a String = scratch;
    let line = match raw.message {
        Some(Message::Borrowed(line)) => line,
        Some(Message::InScratch) => scratch.as_str(),
        None => return Err(EnvelopeError::NoMessage),
    };
    let shipper = text(raw.agent.id).or(raw.host).or(text(raw.beat.hostname)).or(text(raw.beat.name));
    let path = text(raw.log.file.and_then(|file| file.path)).or(text(raw.source));
    let offset = raw.log.offset.or(raw.offset);
    let origin = match (shipper, path, offset) {
        (Some(shipper), Some(path), Some(offset)) => Some(Origin { shipper, path, offset }),
        _ => None,
    };
    Ok(Event { line, origin })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(json: &str) -> Result<(String, Option<Origin<'static>>), String> {
        let mut scratch = String::new();
        let event = decode(json.as_bytes(), &mut scratch).map_err(|e| e.to_string())?;
        let origin = event.origin.map(|o| Origin { shipper: o.shipper.into_owned().into(), path: o.path.into_owned().into(), offset: o.offset });
        Ok((event.line.to_owned(), origin))
    }

    fn origin(shipper: &str, path: &str, offset: u64) -> Option<Origin<'static>> {
        Some(Origin { shipper: shipper.to_owned().into(), path: path.to_owned().into(), offset })
    }

    #[test]
    fn any_key_order_and_nesting() {
        let json = r#"{"log":{"offset":7,"file":{"path":"/a.log"}},"agent":{"id":"A"},"message":"line","host":{"name":"h"}}"#;
        assert_eq!(decoded(json), Ok(("line".into(), origin("A", "/a.log", 7))));
    }

    #[test]
    fn shipper_falls_back_from_agent_id_to_host_name_to_beat() {
        let json = r#"{"message":"x","log":{"offset":1,"file":{"path":"/p"}},"host":{"name":"web-1"}}"#;
        assert_eq!(decoded(json).map(|d| d.1), Ok(origin("web-1", "/p", 1)));
        let json = r#"{"message":"x","log":{"offset":1,"file":{"path":"/p"}},"host":"web-9"}"#;
        assert_eq!(decoded(json).map(|d| d.1), Ok(origin("web-9", "/p", 1)));
        let json = r#"{"message":"x","source":"/p","offset":3,"beat":{"name":"n","hostname":"web-3"}}"#;
        assert_eq!(decoded(json).map(|d| d.1), Ok(origin("web-3", "/p", 3)));
        let json = r#"{"message":"x","source":"/p","offset":3,"beat":{"name":"n"}}"#;
        assert_eq!(decoded(json).map(|d| d.1), Ok(origin("n", "/p", 3)));
    }

    #[test]
    fn incomplete_origin_is_none() {
        assert_eq!(decoded(r#"{"message":"x","log":{"file":{"path":"/p"}},"agent":{"id":"A"}}"#).map(|d| d.1), Ok(None));
        assert_eq!(decoded(r#"{"message":"x","log":{"offset":1},"agent":{"id":"A"}}"#).map(|d| d.1), Ok(None));
        assert_eq!(decoded(r#"{"message":"x","log":null,"host":null,"agent":null}"#).map(|d| d.1), Ok(None));
    }

    #[test]
    fn escaped_message_goes_through_scratch_and_plain_one_is_borrowed() {
        let mut scratch = String::from("old");
        let json = br#"{"message":"a \"quoted\" \u00e9 line"}"#;
        let event = decode(json, &mut scratch).expect("event");
        assert_eq!(event.line, "a \"quoted\" \u{e9} line");

        let mut scratch = String::from("untouched");
        let json = br#"{"message":"plain"}"#;
        let event = decode(json, &mut scratch).expect("event");
        assert_eq!(event.line, "plain");
        let line_ptr = event.line.as_ptr();
        assert!(json.as_ptr_range().contains(&line_ptr), "borrowed from the payload");
        assert_eq!(scratch, "untouched");
    }

    #[test]
    fn errors() {
        assert_eq!(decoded(r#"{"@timestamp":"2026-11-20T08:15:42.118Z"}"#), Err("json object has no message".into()));
        assert!(decoded(r#"{"message":42}"#).is_err_and(|e| e.starts_with("invalid json: invalid type: integer `42`, expected message as a string")));
        assert!(decoded(r#"{"message":"x""#).is_err_and(|e| e.starts_with("invalid json: EOF while parsing")));
        assert!(decoded(r#"{"message":"x"} trailing"#).is_err_and(|e| e.starts_with("invalid json: trailing characters")));
        assert!(decoded(r#"{"message":"x","log":{"offset":-1}}"#).is_err());
        assert!(decoded(r#"["message"]"#).is_err());
    }

    #[test]
    fn unknown_keys_of_any_shape_are_skipped() {
        let json = r#"{"tags":["a",{"b":[1,2.5,null,true]}],"fields":{"x":{"y":"z"}},"message":"m","@metadata":{"beat":"filebeat"}}"#;
        assert_eq!(decoded(json), Ok(("m".into(), None)));
    }
}
