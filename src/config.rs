//! Configuration: TOML with serde, environment overrides, and validation that reports every
//! problem at once. Every option is documented, commented, in `config/edgeflow.toml`.
//!
//! `RawConfig` is what deserialises; `Settings` is the validated form the program uses.
//! Environment overrides: `EDGEFLOW__SECTION__KEY=value` replaces `key` in `[section]`
//! (values are read as TOML scalars when they parse as one, else as strings).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dataflows::alert::AlertPolicy;
use dataflows::clean::CleanConfig;
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
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(value));
        if let Err(key) = set_path(table, &keys, parsed) {
            problems.push(format!("environment variable {name}: `{key}` is not a section"));
        }
    }
    problems
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
            ("EDGEFLOW__KAFKA__TOPIC".to_string(), "\"\"".to_string()),
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
    fn shipped_configs_load() {
        for name in ["edgeflow.toml", "local.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(name);
            Settings::load(Some(&path), Vec::new()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
