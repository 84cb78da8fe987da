//! Named log formats users can pick instead of pasting their own `log_format`.
//!
//! Each preset is the exact text to paste into nginx.conf (see the doc comment on each), so the
//! lines nginx writes parse without surprises. Contract: `find` is case-insensitive; a preset's
//! `escape` is the escaping nginx must be configured with for that text.

use super::escape::Escape;

/// A named, fixed nginx `log_format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub escape: Escape,
    pub format: &'static str,
}

impl Preset {
    /// The `log_format` directive to paste into nginx.conf's `http` block.
    pub fn directive(&self) -> String {
        let escape = match self.escape {
            Escape::Default => String::new(),
            other => format!("escape={} ", other.as_str()),
        };
        format!("log_format {} {}'{}';", self.name, escape, self.format)
    }
}

/// nginx's built-in `combined` format (what `access_log` uses when no format is named):
///
/// ```nginx
/// log_format combined '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"';
/// ```
///
/// It has no `$host`: set `clean.default_domain` to give its lines a domain.
pub const COMBINED: Preset = Preset {
    name: "combined",
    escape: Escape::Default,
    format: r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#,
};

/// The `main` format of nginx's stock nginx.conf: `combined` plus the forwarded-for chain.
///
/// ```nginx
/// log_format main '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for"';
/// ```
///
/// Like `combined` it has no `$host`.
pub const MAIN: Preset = Preset {
    name: "main",
    escape: Escape::Default,
    format: r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for""#,
};

/// The CDN edge format edgeflow is built around: `main` plus the real client address, the
/// virtual host, timings, cache status and total bytes sent. Paste this into nginx.conf:
///
/// ```nginx
/// log_format cdn '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" "$http_x_real_ip" $host $request_time $upstream_response_time $upstream_cache_status $bytes_sent';
/// ```
pub const CDN: Preset = Preset {
    name: "cdn",
    escape: Escape::Default,
    format: r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" "$http_x_forwarded_for" "$http_x_real_ip" $host $request_time $upstream_response_time $upstream_cache_status $bytes_sent"#,
};

/// The CDN fields as one JSON object per line (`escape=json`, every value quoted so a missing
/// value still makes valid JSON). Paste this into nginx.conf:
///
/// ```nginx
/// log_format json escape=json '{"time_iso8601":"$time_iso8601","remote_addr":"$remote_addr","request":"$request","status":"$status","body_bytes_sent":"$body_bytes_sent","bytes_sent":"$bytes_sent","http_referer":"$http_referer","http_user_agent":"$http_user_agent","http_x_forwarded_for":"$http_x_forwarded_for","http_x_real_ip":"$http_x_real_ip","host":"$host","request_time":"$request_time","upstream_response_time":"$upstream_response_time","upstream_cache_status":"$upstream_cache_status"}';
/// ```
///
/// The line is matched by its fixed literal text like any other format, so keep the keys in
/// this order (a shipper that re-serialises the object breaks it).
pub const JSON: Preset = Preset {
    name: "json",
    escape: Escape::Json,
    format: concat!(
        r#"{"time_iso8601":"$time_iso8601","remote_addr":"$remote_addr","request":"$request","#,
        r#""status":"$status","body_bytes_sent":"$body_bytes_sent","bytes_sent":"$bytes_sent","#,
        r#""http_referer":"$http_referer","http_user_agent":"$http_user_agent","#,
        r#""http_x_forwarded_for":"$http_x_forwarded_for","http_x_real_ip":"$http_x_real_ip","#,
        r#""host":"$host","request_time":"$request_time","#,
        r#""upstream_response_time":"$upstream_response_time","upstream_cache_status":"$upstream_cache_status"}"#,
    ),
};

pub const ALL: [&Preset; 4] = [&COMBINED, &MAIN, &CDN, &JSON];

/// The preset called `name` (ASCII case-insensitive).
pub fn find(name: &str) -> Option<&'static Preset> {
    ALL.into_iter().find(|preset| preset.name.eq_ignore_ascii_case(name))
}

/// The preset names, for error messages.
pub fn names() -> String {
    ALL.map(|preset| preset.name).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_and_cdn_extend_combined() {
        assert!(MAIN.format.starts_with(COMBINED.format));
        assert!(CDN.format.starts_with(MAIN.format));
        assert_eq!(
            &CDN.format[MAIN.format.len()..],
            r#" "$http_x_real_ip" $host $request_time $upstream_response_time $upstream_cache_status $bytes_sent"#
        );
    }

    #[test]
    fn json_preset_is_a_json_object_when_values_are_filled_in() {
        let filled = JSON.format.replace('$', "");
        let value: serde_json::Value = serde_json::from_str(&filled).expect("valid json");
        assert_eq!(value.as_object().map(|o| o.len()), Some(14));
        assert_eq!(value["host"], "host");
    }

    #[test]
    fn find_is_case_insensitive() {
        assert_eq!(find("CDN"), Some(&CDN));
        assert_eq!(find("nope"), None);
        assert_eq!(names(), "combined, main, cdn, json");
    }

    #[test]
    fn directive_is_pasteable() {
        assert_eq!(
            COMBINED.directive(),
            r#"log_format combined '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"';"#
        );
        assert!(JSON.directive().starts_with("log_format json escape=json '{"));
    }
}
