//! Alert notifications: a webhook POST per opened and resolved alert.

use serde::Deserialize;

/// `[notify]` settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Webhook URL receiving a JSON POST per opened and resolved alert; unset disables it.
    pub webhook_url: Option<String>,
}
