//! `[dashboard]` settings.

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
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            bind: "127.0.0.1:8080".into(),
            mysql_url: "mysql://edgeflow_ro:edgeflow_ro@127.0.0.1:3307/edgeflow".into(),
            auth_token: None,
        }
    }
}
