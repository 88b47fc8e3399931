//! Logging: JSON lines (or a readable format for development), filtered by `RUST_LOG`. Each
//! line carries the fields of the request's root span, the request id among them.
//!
//! Every line passes through [`redact`] before it is written, whatever field or message a
//! secret might have reached: bearer credentials, `rh-` tokens, JWTs, Fernet keys and tokens,
//! cookies, passwords in URLs and values of secret-named fields are masked. Secrets are also
//! kept out at the source (`SecretString`, redacted `Debug`, no SQL or body logging); this is
//! the net under that.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::LazyLock;

use regex::{Regex, RegexSet};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

/// The filter when `RUST_LOG` is not set: our crates at info, the libraries at warn, and the
/// SQL layers off below warn (statements may carry bound secrets).
const DEFAULT_FILTER: &str = "info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn";

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Patterns of secrets and what each is replaced with (`$1` keeps a harmless prefix).
const PATTERNS: [(&str, &str); 10] = [
    // Authorization header values.
    (
        r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+",
        "$1$2[REDACTED]",
    ),
    // JWTs (three base64url parts, the first one a JSON header).
    (
        r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",
        REDACTED,
    ),
    // API tokens.
    (r"\brh-[A-Za-z0-9_-]{16,}", REDACTED),
    // Fernet tokens (version byte 0x80) and keys (32 bytes, url-safe base64).
    (r"gAAAAA[A-Za-z0-9_=-]{20,}", REDACTED),
    (r"\b[A-Za-z0-9_-]{43}=", REDACTED),
    // Passwords in URLs: scheme://user:password@host.
    (
        r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@",
        "$1[REDACTED]@",
    ),
    // Cookies.
    (
        r"(?i)\b((?:__Host-|__Secure-)?[A-Za-z0-9_-]*session[A-Za-z0-9_-]*=)[^;\s,]+",
        "$1[REDACTED]",
    ),
    // Values of secret-named fields, as `name=value`, `name: value` or JSON.
    (
        r#"(?i)("?\b(?:password|passwd|pwd|secret|client_secret|api_key|apikey|key|token|auth_token|access_token|refresh_token|id_token|authorization|cookie|set-cookie)\b"?\s*[=:]\s*"?)[^\s",}]+"#,
        "$1[REDACTED]",
    ),
    // Values of fields whose name ends in one of those words (`AUDIT_CHAIN_KEY`,
    // `jwt_secret_key`), as `name=value` or JSON; `NAME: text` is how error messages name a
    // variable, so that form is left alone.
    (
        r#"(?i)(\b(?:[A-Za-z0-9]+[_-])+(?:password|secret|key|token)=\s*"?)[^\s",}]+"#,
        "$1[REDACTED]",
    ),
    (
        r#"(?i)("(?:[A-Za-z0-9]+[_-])+(?:password|secret|key|token)"\s*:\s*"?)[^\s",}]+"#,
        "$1[REDACTED]",
    ),
];

/// The patterns, compiled: all of them as one set, which finds in a single pass over a line
/// which patterns occur in it (most lines hold none), and each one on its own, to replace.
/// (They are constants, checked by a test to compile; were the set ever missing, every
/// pattern would be tried on every line, as if each had been found.)
struct Compiled {
    any: Option<RegexSet>,
    each: Vec<(Regex, &'static str)>,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| Compiled {
    any: RegexSet::new(PATTERNS.iter().map(|(pattern, _)| pattern)).ok(),
    each: PATTERNS
        .iter()
        .filter_map(|(pattern, replacement)| Regex::new(pattern).ok().map(|r| (r, *replacement)))
        .collect(),
});

/// `text` with every secret-shaped part masked.
pub fn redact(text: &str) -> Cow<'_, str> {
    let compiled = &*COMPILED;
    // The first pattern that occurs, if any does.
    let first = match &compiled.any {
        Some(set) => match set.matches(text).iter().next() {
            Some(first) => first,
            None => return Cow::Borrowed(text),
        },
        None => 0,
    };
    let mut text = Cow::Borrowed(text);
    // In order, from the first pattern found: a replacement may make or unmake a later
    // pattern's match, so each one after it is looked for again in the text as it is then.
    for (pattern, replacement) in compiled.each.iter().skip(first) {
        if pattern.is_match(&text) {
            text = Cow::Owned(pattern.replace_all(&text, *replacement).into_owned());
        }
    }
    text
}

/// A writer that collects one formatted event and writes it, redacted, when dropped.
pub struct Redacting<W: Write> {
    buffer: Vec<u8>,
    out: W,
}

impl<W: Write> std::fmt::Debug for Redacting<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redacting")
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let text = String::from_utf8_lossy(&self.buffer);
        let result = self.out.write_all(redact(&text).as_bytes());
        self.buffer.clear();
        result.and_then(|()| self.out.flush())
    }
}

impl<W: Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            let _ = self.flush();
        }
    }
}

/// Makes a [`Redacting`] writer to standard error for each event.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = Redacting<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacting {
            buffer: Vec::with_capacity(512),
            out: io::stderr(),
        }
    }
}

/// Installs the global subscriber; logs go to standard error, redacted. Safe to call twice
/// (the second call does nothing), so tests may call it too.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_span_events(FmtSpan::NONE);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.with_ansi(false).compact().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_wherever_they_appear() {
        let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcDEF123_-x";
        let api_token = "rh-j00JBAwwgIte5Y69W-ZZO8jLp7BxMLDzCj6C-e3Tuzk";
        let fernet_key = "Xy3bQ1q8yVfVd2mW0ZKk0QZ2o9cY5rEwB3pL7tNnA0c=";
        let fernet_token = "gAAAAABnR3x0abcdefghijklmnopqrstuvwxyz0123456789";
        let cases = [
            (format!("Authorization: Bearer {jwt}"), jwt),
            (format!("header=\"bearer {api_token}\""), api_token),
            (format!("message=\"token {api_token} refused\""), api_token),
            (format!("{{\"jwt\":\"{jwt}\"}}"), jwt),
            (format!("DB_ENCRYPTION_KEY={fernet_key}"), fernet_key),
            (format!("value {fernet_token}"), fernet_token),
            (
                "postgres://rh_app:hunter2-secret@db:5432/x".to_owned(),
                "hunter2-secret",
            ),
            (
                "cookie: __Host-rh_session=s3cr3t-session-id; Path=/".to_owned(),
                "s3cr3t-session-id",
            ),
            (
                "client_secret=verysecretvalue".to_owned(),
                "verysecretvalue",
            ),
            ("{\"password\": \"pa55word\"}".to_owned(), "pa55word"),
            ("auth_token: sk-live-abcdef".to_owned(), "sk-live-abcdef"),
            (
                "Authorization: Basic dXNlcjpwYXNz".to_owned(),
                "dXNlcjpwYXNz",
            ),
            (
                "AUDIT_CHAIN_KEY=k9Qw-3xZ_audit-chain-secret-0123456789abcdefghijklmnopqrstuvwxyz"
                    .to_owned(),
                "audit-chain-secret",
            ),
            (
                "{\"audit_chain_key\":\"audit-chain-secret-0123456789abcdef\"}".to_owned(),
                "audit-chain-secret",
            ),
            (
                "jwt_secret_key=signing-secret-42".to_owned(),
                "signing-secret-42",
            ),
        ];
        for (line, secret) in &cases {
            let masked = redact(line);
            assert!(!masked.contains(secret), "{line} -> {masked}");
            assert!(masked.contains(REDACTED), "{line} -> {masked}");
        }
    }

    #[test]
    fn the_writer_masks_each_event_before_it_leaves() {
        let mut out = Vec::new();
        {
            let mut writer = Redacting {
                buffer: Vec::new(),
                out: &mut out,
            };
            // An event may arrive in pieces; the secret straddles two writes.
            writer.write_all(b"refused Bearer rh-abcdefghij").unwrap();
            writer.write_all(b"klmnopqrstuvwxyz012345\n").unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "refused Bearer [REDACTED]\n");
    }

    #[test]
    fn every_pattern_compiles_alone_and_in_the_set() {
        assert_eq!(COMPILED.each.len(), PATTERNS.len());
        assert_eq!(
            COMPILED.any.as_ref().map(RegexSet::len),
            Some(PATTERNS.len())
        );
    }

    #[test]
    fn ordinary_lines_are_left_alone() {
        for line in [
            r#"{"message":"request completed","status":200,"request_id":"01a22a0b-bcd3-773b-8eda-01ea7384c8f2","route":"/api/v1/tokens/{token_id}"}"#,
            "token_id=01a22a0b-bcd3-773b-8eda-01ea7384c8f2 reason=expired",
            "hash=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "listening profile=Production port=8080 role=rh_app",
            r#"{"security_event":"audit_chain_head","chain":"system","seq":3,"hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","witness":"system:3:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}"#,
            "configuration: DB_ENCRYPTION_KEY: key #2 is not a Fernet key",
            "unkeyed=2 chain=\"organization 0192d4e0-7c1a-7000-8000-000000000007\"",
        ] {
            assert_eq!(redact(line), line);
        }
    }
}
