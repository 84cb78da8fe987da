//! Configuration: TOML with serde, environment overrides, and validation that reports every
//! problem at once. Every option is documented, commented, in `config/edgeflow.toml`.
//!
//! `RawConfig` is what deserialises; `Settings` is the validated form the program uses.
//! Environment overrides: `EDGEFLOW__SECTION__KEY=value` replaces `key` in `[section]`. Where
//! the option is a string (or a list of names, a URL, an enum word) the value is taken as it
//! is, so an all-digit password or topic stays a string; elsewhere it is read as a TOML value
//! (`120`, `true`, `["a", "b"]`), falling back to a string when it does not parse as one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dataflows::alert::AlertPolicy;
use dataflows::clean::CleanConfig;
use dataflows::domain_gate::DomainGate;
use dataflows::parse::{Decoder, ParseConfig};
use dataflows::window::WindowPolicy;
use serde::Deserialize;

use crate::dashboard::config::DashboardConfig;
use crate::notify::NotifyConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid TOML in {path}: {source}")]
    Toml { path: PathBuf, source: toml::de::Error },
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub kafka: KafkaConfig,
    pub mysql: MysqlConfig,
    pub parse: ParseConfig,
    pub clean: CleanConfig,
    pub window: WindowPolicy,
    pub sink: SinkConfig,
    pub alerts: AlertPolicy,
    pub notify: NotifyConfig,
    pub dashboard: DashboardConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    pub topic: String,
    pub client_id: String,
    /// Where to start a partition that has no checkpoint: `earliest` or `latest`.
    pub start: StartPosition,
    /// Shipper events with the same origin within this much event time count once.
    pub resend_horizon_secs: u64,
    /// Extra librdkafka properties, applied last (they override edgeflow's defaults).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: "access-logs".into(),
            client_id: "edgeflow".into(),
            start: StartPosition::Earliest,
            resend_horizon_secs: dataflows::ingest::DEFAULT_RESEND_HORIZON_SECS,
            properties: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    Earliest,
    Latest,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MysqlConfig {
    /// `mysql://user:password@host:port/database` of the read-write user the job and
    /// `migrate` use.
    pub url: String,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        MysqlConfig { url: "mysql://edgeflow:edgeflow@127.0.0.1:3307/edgeflow".into() }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    /// Rows per multi-row INSERT statement.
    pub rows_per_statement: usize,
    /// Least time between two commits; closed epochs in between share one transaction.
    pub min_commit_interval_ms: u64,
    /// First and longest wait between retries when MySQL fails.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Back-pressure: most event time a worker reads ahead of the committed frontier.
    pub max_uncommitted_secs: u64,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig { rows_per_statement: 500, min_commit_interval_ms: 200, retry_initial_ms: 100, retry_max_ms: 10_000, max_uncommitted_secs: 3600 }
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub mysql: MysqlConfig,
    pub parse: ParseConfig,
    pub clean: CleanConfig,
    pub window: WindowPolicy,
    pub sink: SinkConfig,
    pub alerts: AlertPolicy,
    pub notify: NotifyConfig,
    pub dashboard: DashboardConfig,
    /// `clean.domains`, `clean.new_domains_per_minute` and `clean.new_domain_memory_secs`,
    /// validated.
    pub domain_gate: DomainGate,
}

impl Settings {
    /// Reads `path` (if given), applies `EDGEFLOW__*` overrides from `env`, validates.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Settings, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
                text.parse::<toml::Table>().map_err(|source| ConfigError::Toml { path: path.into(), source })?
            }
            None => toml::Table::new(),
        };
        let mut problems = apply_env_overrides(&mut table, env);
        let raw: RawConfig = toml::Value::Table(table).try_into().map_err(|source| ConfigError::Toml {
            path: path.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("<defaults>")),
            source,
        })?;
        if let Err(window_problems) = raw.window.validate() {
            problems.extend(window_problems);
        }
        if let Err(alert_problems) = raw.alerts.validate() {
            problems.extend(alert_problems);
        }
        if let Err(notify_problems) = raw.notify.validate() {
            problems.extend(notify_problems);
        }
        if raw.kafka.brokers.trim().is_empty() {
            problems.push("kafka.brokers is empty".into());
        }
        if raw.kafka.topic.trim().is_empty() {
            problems.push("kafka.topic is empty".into());
        }
        if let Err(err) = mysql_async::Opts::from_url(&raw.mysql.url) {
            problems.push(format!("mysql.url is not a valid mysql:// URL: {err}"));
        }
        if raw.sink.rows_per_statement == 0 {
            problems.push("sink.rows_per_statement must be at least 1".into());
        }
        if let Err(err) = Decoder::new(&raw.parse, &raw.clean) {
            problems.push(format!("parse/clean: {err}"));
        }
        let domain_gate = raw.clean.domain_gate().unwrap_or_else(|gate_problems| {
            problems.extend(gate_problems.iter().map(ToString::to_string));
            DomainGate::open()
        });
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        Ok(Settings {
            kafka: raw.kafka,
            mysql: raw.mysql,
            parse: raw.parse,
            clean: raw.clean,
            window: raw.window,
            sink: raw.sink,
            alerts: raw.alerts,
            notify: raw.notify,
            dashboard: raw.dashboard,
            domain_gate,
        })
    }

    /// A decoder for this configuration (validated in `load`).
    pub fn decoder(&self) -> Decoder {
        Decoder::new(&self.parse, &self.clean).expect("parse and clean settings were validated at load")
    }
}

const ENV_PREFIX: &str = "EDGEFLOW__";

fn apply_env_overrides(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, value) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else { continue };
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            problems.push(format!("environment variable {name} has an empty key"));
            continue;
        }
        let parsed = if option_is_string(&keys) {
            toml::Value::String(value)
        } else {
            format!("v = {value}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v")).unwrap_or(toml::Value::String(value))
        };
        if let Err(key) = set_path(table, &keys, parsed) {
            problems.push(format!("environment variable {name}: `{key}` is not a section"));
        }
    }
    problems
}

/// Whether the option at `keys` deserialises from a string: `RawConfig`'s own `Deserialize`
/// is walked along the path (see [`OptionProbe`]), so the answer follows the types and needs
/// no list kept beside them.
fn option_is_string(keys: &[String]) -> bool {
    let found = std::cell::Cell::new(None);
    // The probe always ends in an error once it has its answer (or on an unknown key).
    let _ = RawConfig::deserialize(OptionProbe { path: keys, found: &found });
    found.get() == Some(true)
}

/// A deserializer that presents one nested key per level along `path` and, at its end,
/// records whether the type asked for a string (`str`, `string`, `char`, or a unit enum
/// such as `start = "earliest"`), looking through `Option` and newtypes.
struct OptionProbe<'a> {
    path: &'a [String],
    found: &'a std::cell::Cell<Option<bool>>,
}

/// Ends the walk.
#[derive(Debug)]
struct ProbeDone;

impl std::fmt::Display for ProbeDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe done")
    }
}

impl std::error::Error for ProbeDone {}

impl serde::de::Error for ProbeDone {
    fn custom<T: std::fmt::Display>(_: T) -> ProbeDone {
        ProbeDone
    }
}

impl OptionProbe<'_> {
    fn leaf(self, is_string: bool) -> Result<std::convert::Infallible, ProbeDone> {
        self.found.set(Some(is_string));
        Err(ProbeDone)
    }
}

impl<'de> serde::Deserializer<'de> for OptionProbe<'_> {
    type Error = ProbeDone;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeDone> {
        match self.path {
            [] => match self.leaf(false)? {},
            [key, rest @ ..] => visitor.visit_map(OneKey { key: Some(key), value: Some(OptionProbe { path: rest, found: self.found }) }),
        }
    }

    fn deserialize_str<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeDone> {
        if self.path.is_empty() {
            match self.leaf(true)? {}
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_string<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeDone> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeDone> {
        self.deserialize_str(visitor)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(self, _: &'static str, _: &'static [&'static str], visitor: V) -> Result<V::Value, ProbeDone> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeDone> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, ProbeDone> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

/// A map of one entry: the next key of the path, and the probe for what is below it.
struct OneKey<'a> {
    key: Option<&'a String>,
    value: Option<OptionProbe<'a>>,
}

impl<'de> serde::de::MapAccess<'de> for OneKey<'_> {
    type Error = ProbeDone;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, ProbeDone> {
        use serde::de::IntoDeserializer;
        match self.key.take() {
            Some(key) => seed.deserialize(key.as_str().into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ProbeDone> {
        seed.deserialize(self.value.take().ok_or(ProbeDone)?)
    }
}

/// Sets `keys` (a path of nested tables) to `value`; on a non-table on the way, returns its key.
fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    match keys {
        [] => Ok(()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => match table.entry(first.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
            toml::Value::Table(inner) => set_path(inner, rest, value),
            _ => Err(first.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let settings = Settings::load(None, Vec::new()).expect("defaults validate");
        assert_eq!(settings.kafka.topic, "access-logs");
    }

    #[test]
    fn environment_overrides_nested_keys_with_typed_values() {
        let env = vec![
            ("EDGEFLOW__KAFKA__BROKERS".to_string(), "10.1.1.1:9092".to_string()),
            ("EDGEFLOW__WINDOW__ALLOWED_LATENESS_SECS".to_string(), "120".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let settings = Settings::load(None, env).expect("valid");
        assert_eq!(settings.kafka.brokers, "10.1.1.1:9092");
        assert_eq!(settings.window.allowed_lateness_secs, 120);
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let env = vec![
            ("EDGEFLOW__KAFKA__TOPIC".to_string(), String::new()),
            ("EDGEFLOW__WINDOW__TICK_SECS".to_string(), "7".to_string()),
            ("EDGEFLOW__SINK__ROWS_PER_STATEMENT".to_string(), "0".to_string()),
        ];
        let err = Settings::load(None, env).unwrap_err().to_string();
        assert!(err.contains("kafka.topic"), "{err}");
        assert!(err.contains("tick_secs"), "{err}");
        assert!(err.contains("rows_per_statement"), "{err}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[kafka]\nbrokerz = \"x\"\n").unwrap();
        let err = Settings::load(Some(&path), Vec::new()).unwrap_err().to_string();
        assert!(err.contains("brokerz"), "{err}");
    }

    #[test]
    fn the_time_guards_are_configured_in_window() {
        let env = vec![
            ("EDGEFLOW__WINDOW__MAX_FUTURE_SECS".to_string(), "60".to_string()),
            ("EDGEFLOW__WINDOW__MAX_TIME_JUMP_SECS".to_string(), "3600".to_string()),
            ("EDGEFLOW__WINDOW__TIME_JUMP_CONFIRMATIONS".to_string(), "3".to_string()),
            ("EDGEFLOW__WINDOW__TIME_JUMP_PATIENCE".to_string(), "32".to_string()),
        ];
        let window = Settings::load(None, env).expect("valid").window;
        assert_eq!(
            (window.max_future_secs, window.max_time_jump_secs, window.time_jump_confirmations, window.time_jump_patience),
            (60, 3600, 3, 32)
        );
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join("edgeflow.toml");
        assert_eq!(Settings::load(Some(&shipped), Vec::new()).expect("valid").window, WindowPolicy::default(), "edgeflow.toml shows the defaults");
        let bad = vec![("EDGEFLOW__WINDOW__MAX_TIME_JUMP_SECS".to_string(), "1".to_string())];
        assert!(Settings::load(None, bad).unwrap_err().to_string().contains("max_time_jump_secs"));
    }

    #[test]
    fn environment_overrides_of_string_options_stay_strings() {
        let env = vec![
            ("EDGEFLOW__MYSQL__URL".to_string(), "mysql://edgeflow:123456@127.0.0.1:3307/edgeflow".to_string()),
            ("EDGEFLOW__KAFKA__TOPIC".to_string(), "20261205".to_string()),
            ("EDGEFLOW__KAFKA__CLIENT_ID".to_string(), "true".to_string()),
            ("EDGEFLOW__KAFKA__START".to_string(), "latest".to_string()),
            ("EDGEFLOW__KAFKA__PROPERTIES__SASL.PASSWORD".to_string(), "0042".to_string()),
            ("EDGEFLOW__DASHBOARD__AUTH_TOKEN".to_string(), "123456".to_string()),
            ("EDGEFLOW__CLEAN__DEFAULT_DOMAIN".to_string(), "1.example".to_string()),
            ("EDGEFLOW__CLEAN__NEW_DOMAINS_PER_MINUTE".to_string(), "50".to_string()),
            ("EDGEFLOW__CLEAN__DOMAINS".to_string(), r#"["a.example", "*.b.example"]"#.to_string()),
            ("EDGEFLOW__ALERTS__SPIKE_FACTOR".to_string(), "4.5".to_string()),
        ];
        let settings = Settings::load(None, env).expect("valid");
        assert_eq!(settings.kafka.topic, "20261205");
        assert_eq!(settings.kafka.client_id, "true");
        assert_eq!(settings.kafka.start, StartPosition::Latest);
        assert_eq!(settings.kafka.properties["sasl.password"], "0042");
        assert_eq!(settings.dashboard.auth_token.as_deref(), Some("123456"));
        assert_eq!(settings.clean.default_domain.as_deref(), Some("1.example"));
        assert_eq!(settings.clean.new_domains_per_minute, 50);
        assert_eq!(settings.clean.domains, ["a.example", "*.b.example"]);
        assert_eq!(settings.alerts.spike_factor, 4.5);
        assert!(option_is_string(&["mysql".into(), "url".into()]));
        assert!(!option_is_string(&["window".into(), "tick_secs".into()]));
        assert!(!option_is_string(&["kafka".into(), "nope".into()]), "unknown keys keep the TOML reading (and are reported)");
    }

    #[test]
    fn the_domain_gate_is_configured_in_clean_and_validated_with_everything_else() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join("edgeflow.toml");
        let text = std::fs::read_to_string(&shipped).unwrap();
        for option in ["domains", "new_domains_per_minute", "new_domain_memory_secs"] {
            assert!(text.contains(&format!("\n{option} = ")), "edgeflow.toml documents clean.{option}");
        }
        let clean = Settings::load(Some(&shipped), Vec::new()).expect("valid").clean;
        assert_eq!(clean, CleanConfig::default(), "edgeflow.toml shows the defaults");
        let env = vec![
            ("EDGEFLOW__CLEAN__DOMAINS".to_string(), r#"["bad host"]"#.to_string()),
            ("EDGEFLOW__CLEAN__NEW_DOMAIN_MEMORY_SECS".to_string(), "5".to_string()),
            ("EDGEFLOW__WINDOW__TICK_SECS".to_string(), "7".to_string()),
        ];
        let err = Settings::load(None, env).unwrap_err().to_string();
        for expected in ["clean.domains: invalid domain \"bad host\"", "clean.new_domain_memory_secs", "tick_secs"] {
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }

    #[test]
    fn shipped_configs_load() {
        for name in ["edgeflow.toml", "local.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(name);
            Settings::load(Some(&path), Vec::new()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
