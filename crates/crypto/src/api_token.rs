//! User API tokens: `rh-` followed by 32 random bytes in url-safe base64 (no padding), shown
//! once; stored sealed, with a SHA-256 digest for lookup and a hint.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every API token starts with.
pub const API_TOKEN_PREFIX: &str = "rh-";

/// A freshly made API token. The randomness comes from the caller (the core draws none).
pub struct ApiTokenValue(SecretString);

impl std::fmt::Debug for ApiTokenValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiTokenValue([REDACTED])")
    }
}

impl ApiTokenValue {
    /// The token made of 32 random bytes.
    pub fn from_random_bytes(bytes: &[u8; 32]) -> Self {
        Self(SecretString::from(format!(
            "{API_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(bytes)
        )))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }

    pub fn into_secret(self) -> SecretString {
        self.0
    }

    /// The digest stored for lookup.
    pub fn digest(&self) -> [u8; 32] {
        token_digest(self.0.expose_secret())
    }

    /// Whether `candidate` has the shape of an API token (prefix and 43 base64 characters);
    /// anything else is refused before any lookup.
    pub fn is_well_formed(candidate: &str) -> bool {
        candidate.len() == API_TOKEN_PREFIX.len() + 43
            && candidate.starts_with(API_TOKEN_PREFIX)
            && URL_SAFE_NO_PAD
                .decode(&candidate[API_TOKEN_PREFIX.len()..])
                .is_ok_and(|b| b.len() == 32)
    }
}

/// SHA-256 of a token: what the database indexes. Tokens carry 256 bits of randomness, so a
/// plain (unsalted) digest is not guessable.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape_and_digest() {
        let token = ApiTokenValue::from_random_bytes(&[7; 32]);
        let text = token.secret().expose_secret().to_owned();
        assert_eq!(text.len(), 46);
        assert!(text.starts_with("rh-"));
        assert!(ApiTokenValue::is_well_formed(&text));
        assert_eq!(token.digest(), token_digest(&text));
        assert_ne!(token_digest(&text), token_digest("rh-other"));
        // SHA-256 of "abc", the standard's test vector.
        assert_eq!(token_digest("abc")[..4], [0xba, 0x78, 0x16, 0xbf],);
        assert_ne!(
            ApiTokenValue::from_random_bytes(&[8; 32]).digest(),
            token.digest(),
        );
        assert!(!format!("{token:?}").contains(&text[3..]));
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        let good = ApiTokenValue::from_random_bytes(&[1; 32]).into_secret();
        let good = good.expose_secret();
        for bad in [
            "",
            "rh-",
            &good[..good.len() - 1],
            &format!("{good}A"),
            &good.replacen("rh-", "xx-", 1),
            &good.replace(&good[3..5], "!!"),
        ] {
            assert!(!ApiTokenValue::is_well_formed(bad), "{bad:?}");
        }
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq("rh-abc", "rh-abc"));
        assert!(!constant_time_eq("rh-abc", "rh-abd"));
        assert!(!constant_time_eq("rh-abc", "rh-ab"));
        assert!(!constant_time_eq("", "x"));
    }
}
