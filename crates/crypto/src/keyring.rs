use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use chrono::{DateTime, Utc};
use fernet::Fernet;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

/// Why a key ring could not be built. Messages name the variable and the key's position,
/// never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("{var} holds no key")]
    Empty { var: &'static str },
    #[error(
        "{var}: key #{position} is not a Fernet key (url-safe base64 of 32 bytes, 44 characters)"
    )]
    Malformed { var: &'static str, position: usize },
    #[error("{var}: key #{position} repeats key #{first}")]
    Duplicate {
        var: &'static str,
        position: usize,
        first: usize,
    },
}

/// A token that no key of the ring opens: wrong key, tampered, truncated or not a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the token does not decrypt under any key of the ring")]
pub struct DecryptError;

/// Fernet keys, newest first. Encrypts with the first; decrypts with whichever opens.
pub struct KeyRing {
    keys: Vec<Fernet>,
    raw: Vec<[u8; 32]>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing({} keys, [REDACTED])", self.keys.len())
    }
}

impl Drop for KeyRing {
    fn drop(&mut self) {
        use secrecy::zeroize::Zeroize;
        for key in &mut self.raw {
            key.zeroize();
        }
    }
}

/// Whether `value` has the shape of a Fernet token, whole or damaged: the url-safe base64
/// of a version byte 0x80 and a timestamp (`gAAAAA…`) and nothing but base64 characters. A
/// value of this shape that no key opens is a wrong key, tampering or truncation — never
/// plaintext.
pub fn looks_like_fernet_token(value: &str) -> bool {
    value.len() >= 16
        && value.starts_with("gAAAAA")
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
}

/// Fernet timestamps are checked against a future-skew limit even without a time-to-live;
/// stored fields have no time-to-live, so their decryption judges no time (as Python's
/// `decrypt(token)` without `ttl` does).
const NO_TIME_LIMIT: u64 = u64::MAX / 2;

/// The timestamp inside a token, if it has one.
fn token_timestamp(token: &str) -> Option<u64> {
    let bytes = URL_SAFE.decode(token).ok()?;
    let stamp: [u8; 8] = bytes.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(stamp))
}

impl KeyRing {
    /// Parses `value` (the content of the variable `var`): one key, or several separated by
    /// commas, newest first. Each key is exactly what Python's `Fernet.generate_key()` makes.
    pub fn parse(var: &'static str, value: &SecretString) -> Result<Self, KeyRingError> {
        let mut keys = Vec::new();
        let mut raw: Vec<[u8; 32]> = Vec::new();
        for (index, part) in value.expose_secret().split(',').map(str::trim).enumerate() {
            let position = index + 1;
            if part.is_empty() {
                if value.expose_secret().trim().is_empty() {
                    return Err(KeyRingError::Empty { var });
                }
                return Err(KeyRingError::Malformed { var, position });
            }
            let decoded = Zeroizing::new(
                URL_SAFE
                    .decode(part)
                    .map_err(|_| KeyRingError::Malformed { var, position })?,
            );
            let bytes: [u8; 32] = decoded
                .as_slice()
                .try_into()
                .map_err(|_| KeyRingError::Malformed { var, position })?;
            if let Some(first) = raw.iter().position(|k| *k == bytes) {
                return Err(KeyRingError::Duplicate {
                    var,
                    position,
                    first: first + 1,
                });
            }
            let fernet = Fernet::new(part).ok_or(KeyRingError::Malformed { var, position })?;
            keys.push(fernet);
            raw.push(bytes);
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty { var });
        }
        Ok(Self { keys, raw })
    }

    /// Number of keys in the ring.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// A ring is never empty; this exists for symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Encrypts under the primary (first) key, stamped with `now`.
    pub fn encrypt_at(&self, plaintext: &[u8], now: DateTime<Utc>) -> String {
        let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
        // The ring is never empty (parse refuses that), so the first key exists.
        self.keys
            .first()
            .map(|key| key.encrypt_at_time(plaintext, seconds))
            .unwrap_or_default()
    }

    /// Decrypts with whichever key opens the token; returns the plaintext and that key's
    /// position in the ring (0 = primary). No time-to-live: stored fields do not expire.
    pub fn decrypt(&self, token: &str) -> Result<(Zeroizing<Vec<u8>>, usize), DecryptError> {
        self.decrypt_inner(token, None, NO_TIME_LIMIT)
    }

    /// Decrypts a token that is valid for `ttl_seconds` after it was made, judged at `now`
    /// (tokens stamped more than 60 s in the future are refused too, as Python does).
    pub fn decrypt_with_ttl_at(
        &self,
        token: &str,
        ttl_seconds: u64,
        now: DateTime<Utc>,
    ) -> Result<(Zeroizing<Vec<u8>>, usize), DecryptError> {
        let seconds = u64::try_from(now.timestamp()).map_err(|_| DecryptError)?;
        // A forged timestamp near the end of time would overflow the expiry sum.
        let stamp = token_timestamp(token).ok_or(DecryptError)?;
        if stamp.checked_add(ttl_seconds).is_none() {
            return Err(DecryptError);
        }
        self.decrypt_inner(token, Some(ttl_seconds), seconds)
    }

    fn decrypt_inner(
        &self,
        token: &str,
        ttl: Option<u64>,
        now: u64,
    ) -> Result<(Zeroizing<Vec<u8>>, usize), DecryptError> {
        for (index, key) in self.keys.iter().enumerate() {
            if let Ok(plaintext) = key.decrypt_at_time(token, ttl, now) {
                return Ok((Zeroizing::new(plaintext), index));
            }
        }
        Err(DecryptError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn ring(value: &str) -> Result<KeyRing, KeyRingError> {
        KeyRing::parse("DB_ENCRYPTION_KEY", &SecretString::from(value.to_owned()))
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn bad_rings_are_clear_errors_naming_the_variable_and_position() {
        let var = "DB_ENCRYPTION_KEY";
        assert_eq!(ring("").unwrap_err(), KeyRingError::Empty { var });
        assert_eq!(ring("  ").unwrap_err(), KeyRingError::Empty { var });
        assert_eq!(
            ring("not-a-key").unwrap_err(),
            KeyRingError::Malformed { var, position: 1 }
        );
        // 31 bytes, and the key without its padding.
        assert_eq!(
            ring("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==").unwrap_err(),
            KeyRingError::Malformed { var, position: 1 }
        );
        assert_eq!(
            ring(K1.trim_end_matches('=')).unwrap_err(),
            KeyRingError::Malformed { var, position: 1 }
        );
        // The standard alphabet is not the url-safe one Python writes.
        assert_eq!(
            ring(&K1.replace('_', "/").replace('-', "+")).unwrap_err(),
            KeyRingError::Malformed { var, position: 1 }
        );
        assert_eq!(
            ring(&format!("{K2},")).unwrap_err(),
            KeyRingError::Malformed { var, position: 2 }
        );
        assert_eq!(
            ring(&format!("{K2},{K1},{K2}")).unwrap_err(),
            KeyRingError::Duplicate {
                var,
                position: 3,
                first: 1
            }
        );
        let message = ring(&format!("{K2},x")).unwrap_err().to_string();
        assert!(message.contains("DB_ENCRYPTION_KEY") && message.contains("#2"));
        assert!(!message.contains(K2), "the message must not quote a key");
    }

    #[test]
    fn encrypts_with_the_first_key_and_decrypts_with_any() {
        let old = ring(K1).unwrap();
        let rotated = ring(&format!("{K2}, {K1}")).unwrap();
        assert_eq!(rotated.len(), 2);
        let token = old.encrypt_at(b"secret", now());
        let (plaintext, index) = rotated.decrypt(&token).unwrap();
        assert_eq!((plaintext.as_slice(), index), (&b"secret"[..], 1));
        let token = rotated.encrypt_at(b"secret", now());
        assert_eq!(rotated.decrypt(&token).unwrap().1, 0);
        assert_eq!(
            old.decrypt(&token).unwrap_err(),
            DecryptError,
            "K1 alone cannot open K2's token"
        );
    }

    #[test]
    fn bad_tokens_are_errors_not_panics() {
        let ring = ring(K1).unwrap();
        let token = ring.encrypt_at(b"secret", now());
        for bad in [
            "",
            "gAAAAA",
            &token[..token.len() - 4],
            &token[..60],
            &format!("{token}AAAA"),
            &token.replace('A', "B"),
            "not base64 at all!",
        ] {
            assert_eq!(ring.decrypt(bad).unwrap_err(), DecryptError, "{bad:?}");
        }
    }

    #[test]
    fn token_shape_is_recognised() {
        let ring = ring(K1).unwrap();
        assert!(looks_like_fernet_token(&ring.encrypt_at(b"", now())));
        assert!(looks_like_fernet_token(&ring.encrypt_at(&[7; 100], now())));
        let token = ring.encrypt_at(b"x", now());
        assert!(
            looks_like_fernet_token(&token[..token.len() - 10]),
            "a truncated token"
        );
        for not_token in [
            "sk-live-123",
            "",
            "gAAAAA",
            "gAAAAAhello world!",
            "plain text",
        ] {
            assert!(!looks_like_fernet_token(not_token), "{not_token:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_keys() {
        let ring = ring(K1).unwrap();
        let text = format!("{ring:?}");
        assert_eq!(text, "KeyRing(1 keys, [REDACTED])");
    }
}
