//! Request bodies, one per [`PayloadFormat`]: the generic JSON event and Slack's
//! incoming-webhook text.

use dataflows::alert::{AlertEvent, Transition};
use dataflows::parse::time::format_time_iso8601;
use serde::Serialize;

use super::{NotificationKey, PayloadFormat};

/// The `json` body (module doc of `notify`).
#[derive(Debug, Serialize)]
struct EventBody<'a> {
    id: String,
    domain: &'a str,
    kind: &'static str,
    event: &'static str,
    opened_minute: String,
    resolved_minute: Option<String>,
    observed: f64,
    baseline: f64,
    detail: &'a str,
}

/// The `slack` body: an incoming webhook takes `text` (Slack's `mrkdwn`).
#[derive(Debug, Serialize)]
struct SlackBody {
    text: String,
}

/// The body of the notification of `event`, in `format`.
pub(super) fn body(format: PayloadFormat, key: &NotificationKey, event: &AlertEvent) -> Vec<u8> {
    // Strings and finite or non-finite numbers only: serde_json writes NaN as null, so
    // serialisation cannot fail.
    let body = match format {
        PayloadFormat::Json => serde_json::to_vec(&EventBody {
            id: key.id(),
            domain: &event.domain,
            kind: key.kind,
            event: key.event.as_str(),
            opened_minute: rfc3339(event.opened_minute),
            resolved_minute: event.resolved_minute.map(rfc3339),
            observed: event.observed,
            baseline: event.baseline,
            detail: &event.detail,
        }),
        PayloadFormat::Slack => serde_json::to_vec(&SlackBody { text: slack_text(key, event) }),
    };
    body.unwrap_or_default()
}

/// One line: what, where, since when, and the detector's detail, e.g.
/// `:rotating_light: traffic collapse on shop.example.com since 2026-03-01T10:00:00+00:00: requests 100/min vs …`.
fn slack_text(key: &NotificationKey, event: &AlertEvent) -> String {
    let kind = key.kind.replace('_', " ");
    let domain = slack_escape(&event.domain);
    let detail = slack_escape(&event.detail);
    let opened = rfc3339(event.opened_minute);
    match (key.event, event.resolved_minute) {
        (Transition::Resolved, Some(resolved)) => format!(
            ":white_check_mark: resolved: {kind} on *{domain}*, {opened} to {}: {detail}",
            rfc3339(resolved)
        ),
        _ => format!(":rotating_light: {kind} on *{domain}* since {opened}: {detail}"),
    }
}

/// Slack reads `&`, `<` and `>` as markup (links, mentions): they are sent escaped.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn rfc3339(unix_secs: u64) -> String {
    format_time_iso8601(i64::try_from(unix_secs).unwrap_or(i64::MAX / 1000).saturating_mul(1000), 0)
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::notify::fixtures::{collapse, OPENED};

    fn json(format: PayloadFormat, event: &AlertEvent) -> serde_json::Value {
        serde_json::from_slice(&body(format, &NotificationKey::of(event), event)).unwrap()
    }

    #[test]
    fn the_json_body_carries_every_field() {
        assert_eq!(
            json(PayloadFormat::Json, &collapse(None)),
            serde_json::json!({
                "id": "shop.example.com/traffic_collapse/1772359200/opened",
                "domain": "shop.example.com", "kind": "traffic_collapse", "event": "opened",
                "opened_minute": "2026-03-01T10:00:00+00:00", "resolved_minute": null,
                "observed": 100.0, "baseline": 1000.0,
                "detail": "requests 100/min vs baseline 1000/min (-90%), collapse at x0.3",
            })
        );
        let resolved = json(PayloadFormat::Json, &collapse(Some(OPENED + 180)));
        assert_eq!((resolved["event"].as_str(), resolved["resolved_minute"].as_str()), (Some("resolved"), Some("2026-03-01T10:03:00+00:00")));
    }

    #[test]
    fn the_slack_body_is_one_line_of_text() {
        assert_eq!(
            json(PayloadFormat::Slack, &collapse(None)),
            serde_json::json!({"text": ":rotating_light: traffic collapse on *shop.example.com* since 2026-03-01T10:00:00+00:00: \
                requests 100/min vs baseline 1000/min (-90%), collapse at x0.3"})
        );
        assert_eq!(
            json(PayloadFormat::Slack, &collapse(Some(OPENED + 180)))["text"],
            ":white_check_mark: resolved: traffic collapse on *shop.example.com*, 2026-03-01T10:00:00+00:00 to \
             2026-03-01T10:03:00+00:00: requests 100/min vs baseline 1000/min (-90%), collapse at x0.3"
        );
    }

    #[test]
    fn slack_markup_in_the_event_is_escaped() {
        let event = AlertEvent { detail: "<!channel> & <https://evil.example|click>".into(), ..collapse(None) };
        let text = json(PayloadFormat::Slack, &event)["text"].as_str().unwrap().to_string();
        assert!(text.ends_with(": &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"), "{text}");
    }
}
