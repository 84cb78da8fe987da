//! `[dashboard]` settings (documented, commented, in `config/edgeflow.toml`).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Address to listen on. Anything but loopback requires `auth_token`.
    pub bind: String,
    /// Read-only MySQL user's URL.
    pub mysql_url: String,
    /// Bearer token (or basic-auth password) required when not bound to loopback.
    pub auth_token: Option<String>,
    /// Directory holding the front-end packages (`node_modules/` after `npm ci`). Unset: the
    /// `dashboard/` directory of the source tree this binary was built from.
    pub assets_dir: Option<PathBuf>,
    /// Host names (without port) accepted in the `Host` header when no `auth_token` is set,
    /// besides `localhost`, `127.0.0.1` and `[::1]` (a guard against DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// How often the live feed looks for new rows, ms (new rows show within this + ~0.5 s).
    pub live_poll_ms: u64,
    /// Longest time range a request may ask for, days.
    pub max_range_days: u32,
    /// A query slower than this fails with 504, ms.
    pub query_timeout_ms: u64,
    /// Most MySQL connections the dashboard holds.
    pub max_connections: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            bind: "127.0.0.1:8080".into(),
            mysql_url: "mysql://edgeflow_ro:edgeflow_ro@127.0.0.1:3307/edgeflow".into(),
            auth_token: None,
            assets_dir: None,
            allowed_hosts: Vec::new(),
            live_poll_ms: 500,
            max_range_days: 400,
            query_timeout_ms: 20_000,
            max_connections: 8,
        }
    }
}

/// The checked form of [`DashboardConfig`].
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    pub mysql_url: String,
    pub auth_token: Option<String>,
    pub assets_dir: PathBuf,
    pub allowed_hosts: Vec<String>,
    pub live_poll_ms: u64,
    pub max_range_days: u32,
    pub query_timeout_ms: u64,
    pub max_connections: usize,
}

impl DashboardConfig {
    /// Checks every option and reports all problems at once.
    pub fn validate(&self) -> Result<ServeConfig, Vec<String>> {
        let mut problems = Vec::new();
        let bind = match self.bind.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(err) => {
                problems.push(format!("dashboard.bind `{}` is not an address:port: {err}", self.bind));
                None
            }
        };
        let token = self.auth_token.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        if let Some(addr) = bind {
            if !addr.ip().is_loopback() && token.is_none() {
                problems.push(format!(
                    "dashboard.bind {addr} is not a loopback address: set dashboard.auth_token \
                     (e.g. EDGEFLOW__DASHBOARD__AUTH_TOKEN) or bind 127.0.0.1"
                ));
            }
        }
        if let Some(token) = &token {
            if token.len() < 12 {
                problems.push("dashboard.auth_token must be at least 12 characters".into());
            }
        }
        if let Err(err) = mysql_async::Opts::from_url(&self.mysql_url) {
            problems.push(format!("dashboard.mysql_url is not a valid mysql:// URL: {err}"));
        }
        if !(50..=1_500).contains(&self.live_poll_ms) {
            problems.push("dashboard.live_poll_ms must be between 50 and 1500 (new rows must show within 2 s)".into());
        }
        if self.max_range_days == 0 {
            problems.push("dashboard.max_range_days must be at least 1".into());
        }
        if self.query_timeout_ms == 0 {
            problems.push("dashboard.query_timeout_ms must be at least 1".into());
        }
        if self.max_connections == 0 {
            problems.push("dashboard.max_connections must be at least 1".into());
        }
        for host in &self.allowed_hosts {
            if host.is_empty() || (host.contains([':', '/', ' ']) && !host.starts_with('[')) {
                problems.push(format!("dashboard.allowed_hosts entry `{host}` must be a bare host name"));
            }
        }
        match (bind, problems.is_empty()) {
            (Some(bind), true) => Ok(ServeConfig {
                bind,
                mysql_url: self.mysql_url.clone(),
                auth_token: token,
                assets_dir: self.assets_dir.clone().unwrap_or_else(default_assets_dir),
                allowed_hosts: self.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
                live_poll_ms: self.live_poll_ms,
                max_range_days: self.max_range_days,
                query_timeout_ms: self.query_timeout_ms,
                max_connections: self.max_connections,
            }),
            _ => Err(problems),
        }
    }
}

/// `dashboard/` of the source tree this binary was built from.
pub fn default_assets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dashboard")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bind_loopback_without_a_token() {
        let config = DashboardConfig::default().validate().unwrap();
        assert!(config.bind.ip().is_loopback());
        assert_eq!(config.auth_token, None);
    }

    #[test]
    fn other_addresses_need_a_token() {
        let open = DashboardConfig { bind: "0.0.0.0:8080".into(), ..DashboardConfig::default() };
        let problems = open.validate().unwrap_err();
        assert!(problems[0].contains("auth_token"), "{problems:?}");
        let blank = DashboardConfig { auth_token: Some("   ".into()), ..open.clone() };
        assert!(blank.validate().is_err());
        let short = DashboardConfig { auth_token: Some("short".into()), ..open.clone() };
        assert!(short.validate().unwrap_err()[0].contains("12 characters"));
        let ok = DashboardConfig { auth_token: Some("a-long-enough-token".into()), ..open };
        assert_eq!(ok.validate().unwrap().auth_token.as_deref(), Some("a-long-enough-token"));
        let v6 = DashboardConfig { bind: "[::1]:9000".into(), ..DashboardConfig::default() };
        assert!(v6.validate().is_ok());
    }

    #[test]
    fn every_problem_is_reported() {
        let bad = DashboardConfig {
            bind: "nowhere".into(),
            mysql_url: "postgres://x".into(),
            live_poll_ms: 5_000,
            max_connections: 0,
            ..DashboardConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().len(), 4);
    }
}
