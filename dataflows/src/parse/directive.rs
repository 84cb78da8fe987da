//! Reads a whole `log_format` directive pasted from nginx.conf, so users need not unquote it:
//!
//! ```nginx
//! log_format main escape=json '$remote_addr - $remote_user [$time_local] '
//!                             '"$request" $status $body_bytes_sent';
//! ```
//!
//! Contract: tokens follow nginx's config lexer (whitespace-separated, `'…'`/`"…"` quoting with
//! `\"`, `\'`, `\\`, `\t`, `\r`, `\n` escapes, `#` comments, `;` ends the directive); the format
//! is the concatenation of the string arguments after the name and the optional `escape=`,
//! exactly as `ngx_http_log_compile_format` joins them (no separator).

use thiserror::Error;

use super::escape::Escape;

/// A parsed `log_format` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    /// `escape=` if the directive has it.
    pub escape: Option<Escape>,
    pub format: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DirectiveError {
    #[error("directive does not start with log_format")]
    NotLogFormat,
    #[error("log_format has no name")]
    MissingName,
    #[error("log_format {0} has no format string")]
    MissingFormat(String),
    #[error("unknown log format escaping \"{0}\" (expected default, json or none)")]
    UnknownEscape(String),
    #[error("unterminated quoted string in log_format")]
    UnterminatedQuote,
    #[error("unexpected text after ';' in log_format: {0:?}")]
    TrailingText(String),
}

/// Whether `text` looks like a directive rather than a bare format string.
pub fn is_directive(text: &str) -> bool {
    let text = text.trim_start();
    text.strip_prefix("log_format").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_whitespace()))
}

pub fn parse_directive(text: &str) -> Result<Directive, DirectiveError> {
    let tokens = tokenize(text)?;
    let mut tokens = tokens.into_iter();
    if tokens.next().as_deref() != Some("log_format") {
        return Err(DirectiveError::NotLogFormat);
    }
    let name = tokens.next().ok_or(DirectiveError::MissingName)?;
    let mut rest: Vec<String> = tokens.collect();
    let mut escape = None;
    if let Some(value) = rest.first().and_then(|first| first.strip_prefix("escape=")) {
        escape = Some(Escape::from_name(value).ok_or_else(|| DirectiveError::UnknownEscape(value.to_owned()))?);
        rest.remove(0);
    }
    if rest.is_empty() {
        return Err(DirectiveError::MissingFormat(name));
    }
    Ok(Directive { name, escape, format: rest.concat() })
}

fn tokenize(text: &str) -> Result<Vec<String>, DirectiveError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek().copied() {
            None => return Ok(tokens),
            Some('#') => {
                while chars.next_if(|&c| c != '\n').is_some() {}
            }
            Some(';') => {
                chars.next();
                let rest: String = chars.collect();
                let significant = rest.lines().map(|line| line.trim()).filter(|line| !line.is_empty() && !line.starts_with('#'));
                return match significant.into_iter().next() {
                    None => Ok(tokens),
                    Some(extra) => Err(DirectiveError::TrailingText(extra.to_owned())),
                };
            }
            Some(quote @ ('\'' | '"')) => {
                chars.next();
                let mut token = String::new();
                loop {
                    match chars.next() {
                        None => return Err(DirectiveError::UnterminatedQuote),
                        Some(c) if c == quote => break,
                        Some('\\') => push_escaped(&mut token, chars.next()),
                        Some(c) => token.push(c),
                    }
                }
                tokens.push(token);
            }
            Some(_) => {
                let mut token = String::new();
                while let Some(c) = chars.next_if(|&c| !c.is_whitespace() && c != ';') {
                    if c == '\\' {
                        push_escaped(&mut token, chars.next());
                    } else {
                        token.push(c);
                    }
                }
                tokens.push(token);
            }
        }
    }
}

/// nginx's config lexer turns these escapes into characters and keeps any other backslash.
fn push_escaped(token: &mut String, next: Option<char>) {
    match next {
        Some(c @ ('"' | '\'' | '\\')) => token.push(c),
        Some('t') => token.push('\t'),
        Some('r') => token.push('\r'),
        Some('n') => token.push('\n'),
        Some(other) => {
            token.push('\\');
            token.push(other);
        }
        None => token.push('\\'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_directive_with_escape_is_joined() {
        let text = "log_format  main  escape=json '$remote_addr - $remote_user [$time_local] '\n                  '\"$request\" $status';  # trailing comment\n";
        assert!(is_directive(text));
        let directive = parse_directive(text).expect("valid directive");
        assert_eq!(directive.name, "main");
        assert_eq!(directive.escape, Some(Escape::Json));
        assert_eq!(directive.format, "$remote_addr - $remote_user [$time_local] \"$request\" $status");
    }

    #[test]
    fn quotes_and_escapes_follow_nginx() {
        let directive = parse_directive(r#"log_format x "\"$request\" \\ \q" '\'';"#).expect("valid");
        assert_eq!(directive.format, "\"$request\" \\ \\q'");
        assert_eq!(directive.escape, None);
    }

    #[test]
    fn unquoted_format_and_missing_semicolon_are_accepted() {
        assert_eq!(parse_directive("log_format x $status").expect("valid").format, "$status");
    }

    #[test]
    fn errors_are_specific() {
        assert!(!is_directive("$remote_addr log_format"));
        assert!(!is_directive("log_formatx"));
        assert_eq!(parse_directive("log_format"), Err(DirectiveError::MissingName));
        assert_eq!(parse_directive("log_format x;"), Err(DirectiveError::MissingFormat("x".into())));
        assert_eq!(parse_directive("log_format x escape=yaml '$a';"), Err(DirectiveError::UnknownEscape("yaml".into())));
        assert_eq!(parse_directive("log_format x '$a"), Err(DirectiveError::UnterminatedQuote));
        assert_eq!(parse_directive("log_format x '$a'; access_log off;"), Err(DirectiveError::TrailingText("access_log off;".into())));
        assert_eq!(parse_directive("access_log x;"), Err(DirectiveError::NotLogFormat));
    }
}
