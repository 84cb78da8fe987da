//! Shipper envelopes: the JSON object a log shipper's Kafka output writes around each line.
//!
//! Detected by their keys, no configuration: one decoder reads the union of what the shippers
//! send (the keys do not conflict), so a topic may even mix shippers.
//!
//! | shipper | line | shipper id | file | offset |
//! |---|---|---|---|---|
//! | Filebeat 7.x, 8.x | `message` | `agent.id`, else `host.name` | `log.file.path` | `log.offset` |
//! | Filebeat 5.x, 6.x | `message` | `beat.hostname`, else `beat.name` | `source` | `offset` |
//! | rsyslog `omkafka` (`config/shippers/rsyslog.conf`) | `message` | `host` | `file` (imfile's `filename`) | `offset` (imfile's `fileoffset`) |
//! | Vector (`config/shippers/vector.toml`) | `message` | `host` | `file` | `offset` (`offset_key`) |
//! | Fluent Bit (`config/shippers/fluent-bit.conf`) | `log` | `host` or `hostname` | `file` (`Path_Key`) | `offset` (`Offset_Key`) |
//!
//! Contract:
//! - Keys in any order; unknown keys skipped without being built. `host` may be an object with
//!   `name` (Filebeat 6.3+) or a string (the others). `log` is Filebeat's metadata object or,
//!   as a string, Fluent Bit's line; `message` wins if both carry a line. Timestamps
//!   (`@timestamp`, `timestamp`) are ignored: they are the read time, not the request time.
//! - An offset is a JSON number or a string of digits (rsyslog's `jsonf` writes every property
//!   as a string); an empty string, an empty host or an empty path counts as absent (imfile
//!   without `addMetadata`). Any other offset, a negative or fractional one, is an error.
//! - Strings borrow from the payload unless they contain JSON escapes. The line (which holds
//!   escaped quotes in practice) is copied into the caller's reusable buffer instead of a fresh
//!   `String`; serde_json still allocates its own scratch space for escaped text.
//! - `Origin` is set only when the shipper, the path and the offset are all present: anything
//!   less cannot identify a line for de-duplication (the line is still counted).
//! - An object without a line is [`EnvelopeError::NoMessage`] (the caller decides whether it
//!   is an nginx JSON line instead).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use thiserror::Error;

use crate::record::Origin;

/// A decoded shipper event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// The log line (`message`, or Fluent Bit's `log`).
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

/// Where a line ended up: borrowed from the payload, or unescaped into the scratch buffer.
#[derive(Clone, Copy)]
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

/// The text, unless absent or empty (an empty host or path identifies nothing).
fn text(value: Option<Text<'_>>) -> Option<Cow<'_, str>> {
    value.map(|text| text.0).filter(|text| !text.is_empty())
}

/// A byte offset: a JSON number, or a string of digits as rsyslog's `jsonf` writes it. An empty
/// string is no offset.
struct Offset(Option<u64>);

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OffsetVisitor;

        impl Visitor<'_> for OffsetVisitor {
            type Value = Offset;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte offset (a non-negative integer or a string of digits)")
            }

            fn visit_u64<E: de::Error>(self, offset: u64) -> Result<Offset, E> {
                Ok(Offset(Some(offset)))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Offset, E> {
                if text.is_empty() {
                    return Ok(Offset(None));
                }
                // `u64::from_str` would also take a leading `+`.
                match text.bytes().all(|byte| byte.is_ascii_digit()).then(|| text.parse::<u64>().ok()).flatten() {
                    Some(offset) => Ok(Offset(Some(offset))),
                    None => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
                }
            }
        }

        deserializer.deserialize_any(OffsetVisitor)
    }
}

fn offset(value: Option<Offset>) -> Option<u64> {
    value.and_then(|offset| offset.0)
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Key {
    Message,
    Log,
    Host,
    Hostname,
    Agent,
    Beat,
    Source,
    File,
    Offset,
    #[serde(other)]
    Other,
}

#[derive(Default, Deserialize)]
struct LogMeta<'a> {
    #[serde(borrow, default)]
    file: Option<FileMeta<'a>>,
    #[serde(default)]
    offset: Option<Offset>,
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

/// `host`: `{"name": ...}` since Filebeat 6.3, a plain string from the other shippers.
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
                        name = map.next_value::<Option<Text<'de>>>()?.map(|text| text.0);
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

/// `log`: Filebeat's metadata object, or Fluent Bit's line.
enum LogValue<'de> {
    Meta(LogMeta<'de>),
    Line(Message<'de>),
    /// A line when `message` already gave one, or `null`.
    Nothing,
}

/// Reads `log`; a line goes into the scratch buffer only if `message` has not given one
/// (the buffer may hold that one).
struct LogSeed<'s> {
    scratch: &'s mut String,
    want_line: bool,
}

impl<'de> DeserializeSeed<'de> for LogSeed<'_> {
    type Value = LogValue<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<LogValue<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LogSeed<'_> {
    type Value = LogValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("log as an object (filebeat) or a string (fluent bit)")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<LogValue<'de>, E> {
        Ok(if self.want_line { LogValue::Line(Message::Borrowed(text)) } else { LogValue::Nothing })
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<LogValue<'de>, E> {
        if !self.want_line {
            return Ok(LogValue::Nothing);
        }
        self.scratch.clear();
        self.scratch.push_str(text);
        Ok(LogValue::Line(Message::InScratch))
    }

    fn visit_unit<E: de::Error>(self) -> Result<LogValue<'de>, E> {
        Ok(LogValue::Nothing)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LogValue<'de>, A::Error> {
        LogMeta::deserialize(de::value::MapAccessDeserializer::new(map)).map(LogValue::Meta)
    }
}

/// The parts of an event we read, before they are resolved into an [`Event`].
#[derive(Default)]
struct RawEvent<'de> {
    message: Option<Message<'de>>,
    /// Fluent Bit's `log` line.
    log_line: Option<Message<'de>>,
    log: LogMeta<'de>,
    host: Option<Cow<'de, str>>,
    hostname: Option<Text<'de>>,
    agent: AgentMeta<'de>,
    beat: BeatMeta<'de>,
    source: Option<Text<'de>>,
    file: Option<Text<'de>>,
    offset: Option<Offset>,
}

struct EventVisitor<'s>(&'s mut String);

impl<'de> Visitor<'de> for EventVisitor<'_> {
    type Value = RawEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a shipper event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent<'de>, A::Error> {
        let mut event = RawEvent::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Message => event.message = Some(map.next_value_seed(MessageSeed(&mut *self.0))?),
                Key::Log => match map.next_value_seed(LogSeed { scratch: &mut *self.0, want_line: event.message.is_none() })? {
                    LogValue::Meta(meta) => event.log = meta,
                    LogValue::Line(line) => event.log_line = Some(line),
                    LogValue::Nothing => {}
                },
                Key::Host => event.host = map.next_value::<Option<HostName<'de>>>()?.and_then(|host| host.0),
                Key::Hostname => event.hostname = map.next_value()?,
                Key::Agent => event.agent = map.next_value::<Option<AgentMeta<'de>>>()?.unwrap_or_default(),
                Key::Beat => event.beat = map.next_value::<Option<BeatMeta<'de>>>()?.unwrap_or_default(),
                Key::Source => event.source = map.next_value()?,
                Key::File => event.file = map.next_value()?,
                Key::Offset => event.offset = map.next_value()?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(event)
    }
}

/// Decodes a shipper event; `scratch` holds the line when it had to be unescaped.
pub fn decode<'a>(json: &'a [u8], scratch: &'a mut String) -> Result<Event<'a>, EnvelopeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let raw = deserializer.deserialize_map(EventVisitor(&mut *scratch))?;
    deserializer.end()?;
    let scratch: &'a String = scratch;
    // `message` wins; a `log` line read after it never touched the scratch buffer, and one read
    // before it is no longer needed.
    let line = match raw.message.or(raw.log_line) {
        Some(Message::Borrowed(line)) => line,
        Some(Message::InScratch) => scratch.as_str(),
        None => return Err(EnvelopeError::NoMessage),
    };
    let shipper = text(raw.agent.id)
        .or(raw.host.filter(|host| !host.is_empty()))
        .or(text(raw.hostname))
        .or(text(raw.beat.hostname))
        .or(text(raw.beat.name));
    let path = text(raw.log.file.and_then(|file| file.path)).or(text(raw.file)).or(text(raw.source));
    let offset = offset(raw.log.offset).or(offset(raw.offset));
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
    fn rsyslog_template_keys_with_the_offset_as_a_number_or_a_string() {
        // What config/shippers/rsyslog.conf sends (jsonf: `/` written as `\/`, spaces after commas).
        let json = r#"{"message":"1.2.3.4 - - \"GET \/ HTTP\/1.1\"", "host":"web-1", "file":"\/var\/log\/nginx\/access.log", "offset":243}"#;
        assert_eq!(decoded(json), Ok((r#"1.2.3.4 - - "GET / HTTP/1.1""#.into(), origin("web-1", "/var/log/nginx/access.log", 243))));
        // Without datatype="number" jsonf quotes the offset.
        let json = r#"{"message":"x","host":"web-1","file":"/a.log","offset":"243"}"#;
        assert_eq!(decoded(json).map(|d| d.1), Ok(origin("web-1", "/a.log", 243)));
        // imfile without addMetadata: empty metadata, the line without an origin.
        let json = r#"{"message":"x","host":"web-1","file":"","offset":""}"#;
        assert_eq!(decoded(json), Ok(("x".into(), None)));
        let json = r#"{"message":"x","host":"","file":"/a.log","offset":5}"#;
        assert_eq!(decoded(json).map(|d| d.1), Ok(None));
    }

    #[test]
    fn malformed_offsets_are_errors() {
        for offset in [r#""12a""#, r#""+5""#, r#"" 5""#, r#""-5""#, "-5", "1.5", "true", "[1]", r#""18446744073709551616""#] {
            let json = format!(r#"{{"message":"x","host":"h","file":"/a","offset":{offset}}}"#);
            assert!(decoded(&json).is_err_and(|e| e.starts_with("invalid json: invalid")), "{json}: {:?}", decoded(&json));
        }
        assert!(decoded(r#"{"message":"x","log":{"offset":"7x"}}"#).is_err());
        assert_eq!(decoded(r#"{"message":"x","host":"h","file":"/a","offset":null}"#).map(|d| d.1), Ok(None));
    }

    #[test]
    fn vector_event_keys() {
        let json = r#"{"file":"/var/log/nginx/access.log","host":"web-2","message":"line","offset":159,"source_type":"file","timestamp":"2026-11-20T08:15:42.118432905Z"}"#;
        assert_eq!(decoded(json), Ok(("line".into(), origin("web-2", "/var/log/nginx/access.log", 159))));
        // Without offset_key: counted, but re-sends cannot be recognised.
        let json = r#"{"file":"/var/log/nginx/access.log","host":"web-2","message":"line","source_type":"file"}"#;
        assert_eq!(decoded(json), Ok(("line".into(), None)));
    }

    #[test]
    fn fluent_bit_log_string_is_the_line() {
        let json = r#"{"@timestamp":1795162542.118042,"file":"/var/log/nginx/access.log","offset":560,"log":"a \"b\" line","host":"web-3"}"#;
        assert_eq!(decoded(json), Ok(("a \"b\" line".into(), origin("web-3", "/var/log/nginx/access.log", 560))));
        // record_modifier's usual key is `hostname`.
        let json = r#"{"log":"x","file":"/p","offset":1,"hostname":"web-4"}"#;
        assert_eq!(decoded(json).map(|d| d.1), Ok(origin("web-4", "/p", 1)));
        let json = r#"{"log":null,"message":"x"}"#;
        assert_eq!(decoded(json), Ok(("x".into(), None)));
        assert!(decoded(r#"{"log":7}"#).is_err_and(|e| e.contains("log as an object (filebeat) or a string (fluent bit)")));
        assert_eq!(decoded(r#"{"log":null}"#), Err("json object has no message".into()));
    }

    #[test]
    fn message_wins_over_a_log_line_in_either_order_and_with_escapes() {
        for json in [
            r#"{"message":"m \"1\"","log":"l \"2\""}"#,
            r#"{"log":"l \"2\"","message":"m \"1\""}"#,
            r#"{"log":"l \"2\"","message":"m \u0022\u0031\""}"#,
        ] {
            assert_eq!(decoded(json).map(|d| d.0), Ok("m \"1\"".into()), "{json}");
        }
        assert_eq!(decoded(r#"{"log":"l \"2\"","message":"m"}"#).map(|d| d.0), Ok("m".into()));
        assert_eq!(decoded(r#"{"message":"m","log":"l \"2\""}"#).map(|d| d.0), Ok("m".into()));
    }

    #[test]
    fn unknown_keys_of_any_shape_are_skipped() {
        let json = r#"{"tags":["a",{"b":[1,2.5,null,true]}],"fields":{"x":{"y":"z"}},"message":"m","@metadata":{"beat":"filebeat"}}"#;
        assert_eq!(decoded(json), Ok(("m".into(), None)));
    }
}
