//! What every response passes through: the access check and the security headers.
//!
//! - Access: with `auth_token` set, every request needs `Authorization: Bearer <token>` or
//!   basic auth whose password is the token (any user name), else 401 with a basic-auth
//!   challenge, so a browser asks once and then sends it with every fetch and event stream.
//!   Without a token (only allowed on loopback) the `Host` header must name this machine
//!   (`localhost`, `127.0.0.1`, `[::1]`, or `allowed_hosts`): a page on another site cannot
//!   reach the dashboard through DNS rebinding.
//! - Headers: a content security policy that allows only this origin's scripts and styles
//!   (no inline script, no eval), no framing, no sniffing, no referrer.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::AppState;

pub async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match &state.config.auth_token {
        Some(token) => {
            if !authorized(request.headers().get(header::AUTHORIZATION), token) {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"edgeflow\", charset=\"UTF-8\""))],
                    "authentication required\n",
                )
                    .into_response();
            }
        }
        None => {
            if let Some(host) = request.headers().get(header::HOST) {
                if !host_allowed(host.as_bytes(), &state.config.allowed_hosts) {
                    return (StatusCode::FORBIDDEN, "host not allowed: set dashboard.allowed_hosts or an auth_token\n")
                        .into_response();
                }
            }
        }
    }
    next.run(request).await
}

pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn authorized(value: Option<&HeaderValue>, token: &str) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else { return false };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return constant_time_eq(rest.as_bytes(), token.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest) else { return false };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else { return false };
        return constant_time_eq(&decoded[colon + 1..], token.as_bytes());
    }
    false
}

/// Compares without an early exit, so timing tells nothing but the length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn host_allowed(host: &[u8], allowed: &[String]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else { return false };
    let host = host.trim().to_ascii_lowercase();
    let name = if host.starts_with('[') {
        host.split_once(']').map(|(h, _)| format!("{h}]")).unwrap_or(host.clone())
    } else {
        host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h).to_owned()
    };
    matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]") || allowed.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_carry_the_token() {
        let token = "s3cret-token-123";
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("anyone:{token}")));
        for (value, ok) in [
            (format!("Bearer {token}"), true),
            (format!("bearer  {token} "), true),
            (basic, true),
            ("Bearer wrong".to_string(), false),
            (format!("Token {token}"), false),
            ("Basic !!!".to_string(), false),
            ("Basic dXNlcg==".to_string(), false), // "user", no colon
        ] {
            assert_eq!(authorized(Some(&HeaderValue::from_str(&value).unwrap()), token), ok, "{value}");
        }
        assert!(!authorized(None, token));
    }

    #[test]
    fn only_local_host_names_without_a_token() {
        let allowed = vec!["dash.internal".to_string()];
        for (host, ok) in [
            ("localhost:8080", true),
            ("127.0.0.1:8080", true),
            ("[::1]:8080", true),
            ("LOCALHOST", true),
            ("dash.internal:80", true),
            ("evil.example:8080", false),
            ("127.0.0.1.evil.example", false),
            ("[::2]:80", false),
        ] {
            assert_eq!(host_allowed(host.as_bytes(), &allowed), ok, "{host}");
        }
    }
}
