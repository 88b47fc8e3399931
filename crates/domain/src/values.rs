//! Validated values. Each constructor returns its own error; a value that exists is valid.

use std::collections::BTreeMap;
use std::fmt;

/// The longest name of anything (organization, project, endpoint, model, token), in characters.
pub const NAME_MAX_CHARS: usize = 200;
/// The longest description, in characters.
pub const DESCRIPTION_MAX_CHARS: usize = 4000;
/// The longest URL, in bytes.
pub const URL_MAX_BYTES: usize = 2048;
/// The most request headers an endpoint or model may carry.
pub const HEADERS_MAX_COUNT: usize = 50;
/// The longest request header value, in bytes.
pub const HEADER_VALUE_MAX_BYTES: usize = 4096;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name must not be empty")]
    Empty,
    #[error("a name must be at most {NAME_MAX_CHARS} characters")]
    TooLong,
    #[error("a name must not contain control characters")]
    ControlCharacter,
}

/// A display name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Name(String);

impl Name {
    pub fn new(raw: &str) -> Result<Self, NameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        if trimmed.chars().count() > NAME_MAX_CHARS {
            return Err(NameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a description was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptionError {
    #[error("a description must be at most {DESCRIPTION_MAX_CHARS} characters")]
    TooLong,
    #[error("a description must not contain control characters other than line breaks and tabs")]
    ControlCharacter,
}

/// Free text: at most 4000 characters; line breaks and tabs allowed, other control characters not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Description(String);

impl Description {
    pub fn new(raw: &str) -> Result<Self, DescriptionError> {
        if raw.chars().count() > DESCRIPTION_MAX_CHARS {
            return Err(DescriptionError::TooLong);
        }
        if raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(DescriptionError::ControlCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why an e-mail address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("an e-mail address must be at most 254 characters")]
    TooLong,
    #[error("an e-mail address must have the form local@domain.tld")]
    Malformed,
}

/// An e-mail address, normalised to lower case so that one mailbox has one spelling.
///
/// Deliberately strict (no quoted local parts, no IP-literal domains): these addresses come
/// from an identity provider or an invitation form, and a narrow grammar leaves no room for
/// look-alike spellings of one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Email(String);

impl Email {
    pub fn new(raw: &str) -> Result<Self, EmailError> {
        let raw = raw.trim();
        if raw.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let lower = raw.to_ascii_lowercase();
        let (local, domain) = lower.split_once('@').ok_or(EmailError::Malformed)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_alphabetic()));
        if local_ok && domain_ok {
            Ok(Self(lower))
        } else {
            Err(EmailError::Malformed)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("a URL must be at most {URL_MAX_BYTES} bytes")]
    TooLong,
    #[error("a URL must use http or https")]
    Scheme,
    #[error("a URL must name a host")]
    NoHost,
    #[error("a URL must not carry credentials")]
    Credentials,
    #[error("a URL must not contain spaces or control characters")]
    BadCharacter,
}

/// An absolute `http` or `https` URL with a host and no embedded credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct HttpUrl(String);

impl HttpUrl {
    pub fn new(raw: &str) -> Result<Self, UrlError> {
        if raw.len() > URL_MAX_BYTES {
            return Err(UrlError::TooLong);
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(UrlError::BadCharacter);
        }
        let lower = raw.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .ok_or(UrlError::Scheme)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let host = match authority.strip_prefix('[') {
            // An IPv6 literal: the host is what stands between the brackets.
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_https(&self) -> bool {
        self.0
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    }
}

/// Why a set of request headers was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("at most {HEADERS_MAX_COUNT} headers are allowed")]
    TooMany,
    #[error("a header name must be a non-empty HTTP token of at most 64 characters")]
    Name,
    #[error("a header value must be at most {HEADER_VALUE_MAX_BYTES} bytes without line breaks")]
    Value,
}

/// Extra headers sent with requests to an endpoint or a provider.
///
/// Names are HTTP tokens (RFC 9110), stored in lower case; values carry no CR, LF or NUL, so
/// no stored header can inject another header or a request into the outgoing message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct RequestHeaders(BTreeMap<String, String>);

impl RequestHeaders {
    pub fn new<I, K, V>(pairs: I) -> Result<Self, HeaderError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut map = BTreeMap::new();
        for (name, value) in pairs {
            let (name, value) = (name.as_ref(), value.as_ref());
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || name.len() > 64 || !name.chars().all(token) {
                return Err(HeaderError::Name);
            }
            if value.len() > HEADER_VALUE_MAX_BYTES
                || value.chars().any(|c| matches!(c, '\r' | '\n' | '\0'))
            {
                return Err(HeaderError::Value);
            }
            map.insert(name.to_ascii_lowercase(), value.to_owned());
            if map.len() > HEADERS_MAX_COUNT {
                return Err(HeaderError::TooMany);
            }
        }
        Ok(Self(map))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A short, non-revealing hint of a secret, for people to recognise which one is set.
///
/// Long secrets show their first 3 and last 4 characters (`rh-...x9Qa`); secrets shorter
/// than [`SecretHint::MIN_CHARS_FOR_AFFIXES`] show nothing of themselves, since 7 characters
/// of a short secret would give too much of it away.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct SecretHint(String);

impl SecretHint {
    pub const MIN_CHARS_FOR_AFFIXES: usize = 20;

    pub fn of(secret: &str) -> Self {
        let chars: Vec<char> = secret.chars().collect();
        if chars.len() < Self::MIN_CHARS_FOR_AFFIXES {
            return Self("...".to_owned());
        }
        let head: String = chars.iter().take(3).collect();
        let tail: String = chars.iter().skip(chars.len() - 4).collect();
        Self(format!("{head}...{tail}"))
    }

    /// A hint read back from storage, where it was made by [`SecretHint::of`].
    pub fn from_stored(hint: String) -> Self {
        Self(hint)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a reader may know of a write-only secret: whether it is set, and its hint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum SecretSlot {
    Unset,
    Set { hint: SecretHint },
}

impl SecretSlot {
    pub fn is_set(&self) -> bool {
        matches!(self, Self::Set { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::new("  Acme  ").unwrap().as_str(), "Acme");
        assert_eq!(Name::new("   "), Err(NameError::Empty));
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(Name::new(&"x".repeat(201)), Err(NameError::TooLong));
        assert!(
            Name::new(&"é".repeat(200)).is_ok(),
            "the bound counts characters, not bytes"
        );
        assert_eq!(Name::new("a\u{0}b"), Err(NameError::ControlCharacter));
        assert_eq!(Name::new("a\nb"), Err(NameError::ControlCharacter));
    }

    #[test]
    fn descriptions_allow_line_breaks_only() {
        assert!(Description::new("line one\nline two\ttab").is_ok());
        assert!(Description::new("").is_ok());
        assert_eq!(
            Description::new("bell\u{7}"),
            Err(DescriptionError::ControlCharacter)
        );
        assert_eq!(
            Description::new(&"x".repeat(4001)),
            Err(DescriptionError::TooLong)
        );
    }

    #[test]
    fn emails_are_normalised_and_strict() {
        assert_eq!(
            Email::new(" Ada@Example.ORG ").unwrap().as_str(),
            "ada@example.org"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "ada@@example.org",
            "ada@exa mple.org",
            "a..b@example.org",
            ".a@example.org",
            "ada@-example.org",
            "ada@example.o1",
            "\"ada\"@example.org",
            "ada@[127.0.0.1]",
        ] {
            assert_eq!(Email::new(bad), Err(EmailError::Malformed), "{bad:?}");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert_eq!(Email::new(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn urls_need_http_a_host_and_no_credentials() {
        assert!(
            HttpUrl::new("https://api.example.org/v1/chat?x=1")
                .unwrap()
                .is_https()
        );
        assert!(!HttpUrl::new("http://localhost:8000").unwrap().is_https());
        assert!(HttpUrl::new("https://[::1]:8443/x").is_ok());
        assert_eq!(HttpUrl::new("ftp://example.org"), Err(UrlError::Scheme));
        assert_eq!(HttpUrl::new("javascript:alert(1)"), Err(UrlError::Scheme));
        assert_eq!(HttpUrl::new("https://"), Err(UrlError::NoHost));
        assert_eq!(HttpUrl::new("https:///path"), Err(UrlError::NoHost));
        assert_eq!(
            HttpUrl::new("https://user:pw@example.org"),
            Err(UrlError::Credentials)
        );
        assert_eq!(
            HttpUrl::new("https://exa mple.org"),
            Err(UrlError::BadCharacter)
        );
        assert_eq!(
            HttpUrl::new("https://example.org/\r\nX: y"),
            Err(UrlError::BadCharacter)
        );
        let long = format!("https://example.org/{}", "a".repeat(2048));
        assert_eq!(HttpUrl::new(&long), Err(UrlError::TooLong));
    }

    #[test]
    fn headers_cannot_inject() {
        let headers =
            RequestHeaders::new([("X-Trace", "abc"), ("Accept", "application/json")]).unwrap();
        assert_eq!(
            headers.iter().collect::<Vec<_>>(),
            vec![("accept", "application/json"), ("x-trace", "abc")]
        );
        assert_eq!(
            RequestHeaders::new([("X-A", "b\r\nHost: evil")]),
            Err(HeaderError::Value)
        );
        assert_eq!(RequestHeaders::new([("X A", "b")]), Err(HeaderError::Name));
        assert_eq!(RequestHeaders::new([("", "b")]), Err(HeaderError::Name));
        assert_eq!(RequestHeaders::new([("X-A:", "b")]), Err(HeaderError::Name));
        let many = (0..51).map(|i| (format!("x-{i}"), "v".to_owned()));
        assert_eq!(RequestHeaders::new(many), Err(HeaderError::TooMany));
    }

    #[test]
    fn hints_reveal_little() {
        let token = "rh-abcdefghijklmnopqrstuvwxyz0123456789ABCD";
        assert_eq!(SecretHint::of(token).as_str(), "rh-...ABCD");
        assert_eq!(SecretHint::of("short-secret").as_str(), "...");
        assert_eq!(SecretHint::of("").as_str(), "...");
        assert_eq!(
            SecretHint::of("ééééééééééééééééééééé").as_str(),
            "ééé...éééé"
        );
    }
}

/// A text that names none of an enumeration's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {0}")]
pub struct UnknownVariant(pub &'static str);
