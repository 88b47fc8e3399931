//! The backend's own access tokens: HS256 JWTs.
//!
//! Only HS256 is accepted (no `none`, no algorithm confusion); `exp`, `nbf`, `iss`, `aud`,
//! `sub` are required and checked, `typ` must be ours. Time is a parameter: expiry and
//! not-before are judged against the `now` the caller passes (the library's own clock checks
//! are off), with a small leeway. A previous key, named by `kid`, keeps verifying during a
//! rotation.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The shortest signing key accepted, in bytes.
pub const MIN_JWT_KEY_BYTES: usize = 32;
/// The fewest distinct byte values a production signing key must hold: a key of 32 or more
/// bytes made of a handful of characters (one letter repeated, a word typed over and over)
/// is long only on paper.
pub const MIN_JWT_KEY_DISTINCT_BYTES: usize = 16;
/// The fewest guesses (as a power of ten) a production key must take by zxcvbn's estimate:
/// sequences (`0123456789abcdef…`), repeats (`changeme-changeme-…`), keyboard walks and common
/// passwords fall far below it; a random key of 32 or more characters is at zxcvbn's ceiling
/// (about 10^19). Phrases of ordinary words also reach the ceiling, which is why the
/// documentation asks for generated keys.
pub const MIN_KEY_GUESSES_LOG10: f64 = 14.0;
/// The `typ` claim of access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "access";

/// Why the signing keys were refused. Messages name the variable, never the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtKeyError {
    #[error("{var} must be at least {MIN_JWT_KEY_BYTES} bytes")]
    TooShort { var: &'static str },
    #[error(
        "{var} has too little variety (fewer than {MIN_JWT_KEY_DISTINCT_BYTES} distinct bytes, or fewer than {MIN_ENCODED_KEY_BITS} bits as hex or base64): generate a random key"
    )]
    TooUniform { var: &'static str },
    #[error(
        "{var} is guessable (a sequence, a repeat, a keyboard walk or a common password): generate a random key"
    )]
    Guessable { var: &'static str },
    #[error("{var} repeats the current key")]
    SameAsCurrent { var: &'static str },
    #[error("{var} could not be used as an HMAC key")]
    Unusable { var: &'static str },
}

/// Why a token was refused. The reason is for the log and the audit log, never the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not HS256")]
    Algorithm,
    #[error("the token names an unknown key")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("a required claim is missing or malformed")]
    Claims,
    #[error("the token was issued for another issuer or audience")]
    IssuerOrAudience,
    #[error("the token is not an access token")]
    Type,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The organization id, if the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Uuid>,
    /// The role in that organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// The token's id, for revocation.
    pub jti: Uuid,
    /// When the user last authenticated interactively (seconds since the epoch).
    pub auth_time: i64,
    pub typ: String,
    /// The browser session the token was minted from, if any: ending that session revokes
    /// every token that names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

/// What an access token says about its subject; the rest the issuer fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub user: Uuid,
    pub organization: Option<Uuid>,
    pub role: Option<String>,
    pub auth_time: DateTime<Utc>,
    /// The browser session it is minted from, if any.
    pub session: Option<Uuid>,
}

struct Key {
    kid: String,
    decoding: DecodingKey,
}

/// Issues and verifies access tokens.
pub struct JwtAuthority {
    kid: String,
    encoding: EncodingKey,
    keys: Vec<Key>,
    issuer: String,
    audience: String,
    lifetime: Duration,
    leeway_seconds: i64,
}

impl std::fmt::Debug for JwtAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthority")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// A key id derived from the key: 16 hex digits of its SHA-256, which reveal nothing usable.
fn key_id(secret: &[u8]) -> String {
    Sha256::digest(secret)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn key<'a>(var: &'static str, secret: &'a SecretString) -> Result<(String, &'a [u8]), JwtKeyError> {
    let bytes = secret.expose_secret().as_bytes();
    if bytes.len() < MIN_JWT_KEY_BYTES {
        return Err(JwtKeyError::TooShort { var });
    }
    Ok((key_id(bytes), bytes))
}

/// The fewest bits a key written in an encoding (hex, base64) must carry by its length.
pub const MIN_ENCODED_KEY_BITS: usize = 128;

/// Words a person puts in a key they make up for this product, as zxcvbn's own inputs.
const CONTEXT_WORDS: [&str; 20] = [
    "rhesis",
    "jwt",
    "audit",
    "chain",
    "secret",
    "signing",
    "sign",
    "key",
    "token",
    "hmac",
    "production",
    "prod",
    "staging",
    "dev",
    "test",
    "password",
    "changeme",
    "admin",
    "server",
    "backend",
];

/// The bits a key carries by its length if it is written in hex (a UUID's dashes aside, 4 a
/// digit) or base64 (6 a character, padding aside); `None` for a key in no such alphabet.
fn encoded_bits(key: &str) -> Option<usize> {
    let hex = key.chars().filter(char::is_ascii_hexdigit).count();
    if hex > 0 && key.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Some(hex * 4);
    }
    let body = key.trim_end_matches('=');
    let base64 = |c: char| c.is_ascii_alphanumeric() || "+/-_".contains(c);
    (!body.is_empty() && body.chars().all(base64)).then(|| body.chars().count() * 6)
}

/// The text a hex or base64 key decodes to, when it decodes to printable text: a phrase run
/// through an encoder is still the phrase.
fn decoded_text(key: &str) -> Option<String> {
    use base64::Engine as _;
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let from_hex = || -> Option<Vec<u8>> {
        let digits = key.as_bytes();
        (digits.len().is_multiple_of(2) && digits.iter().all(u8::is_ascii_hexdigit)).then(|| {
            digits
                .chunks_exact(2)
                .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
                .collect()
        })
    };
    let bytes = from_hex().or_else(|| engines.iter().find_map(|e| e.decode(key).ok()))?;
    let printable = bytes.len() >= 8 && bytes.iter().all(|b| (0x20..0x7f).contains(b));
    printable.then(|| String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether a secret has too little variety to be a production key: written in hex or base64,
/// fewer than [`MIN_ENCODED_KEY_BITS`] by its length (a random key's digits repeat, which says
/// nothing of it); otherwise fewer than [`MIN_JWT_KEY_DISTINCT_BYTES`] distinct bytes.
pub fn too_uniform(secret: &SecretString) -> bool {
    let key = secret.expose_secret();
    match encoded_bits(key) {
        Some(bits) => bits < MIN_ENCODED_KEY_BITS,
        None => key.bytes().collect::<HashSet<u8>>().len() < MIN_JWT_KEY_DISTINCT_BYTES,
    }
}

/// Whether a secret is a pattern a person types rather than a random key: fewer than
/// 10^[`MIN_KEY_GUESSES_LOG10`] guesses by zxcvbn's estimate (of its first 100 characters,
/// with this product's words as known inputs), itself or the text it decodes to. A hash of a
/// password looks random to it.
pub fn guessable(secret: &SecretString) -> bool {
    let weak = |text: &str| {
        zxcvbn::zxcvbn(text, &CONTEXT_WORDS).guesses_log10() < MIN_KEY_GUESSES_LOG10
            || (is_phrase(text) && phrase_guesses_log10(text) < MIN_PHRASE_GUESSES_LOG10)
    };
    let key = secret.expose_secret();
    weak(key)
        || decoded_text(key).is_some_and(|text| {
            weak(&text) || text.bytes().collect::<HashSet<u8>>().len() < MIN_JWT_KEY_DISTINCT_BYTES
        })
}

/// Whether a text is written as words: it separates runs of letters with a space or a mark
/// people put between words. Only such a text is read as a phrase; a random key of letters
/// and digits alone would sometimes look like one (its long runs of letters).
fn is_phrase(text: &str) -> bool {
    text.chars().any(|c| " -_.,;:!".contains(c))
}

/// The fewest guesses (as a power of ten) a key must take when read as a phrase: its runs of
/// letters, digits and other characters guessed one by one. A phrase of words and a year
/// (`Rhesis-Production-JWT-Secret-Key-2026!`) is far below; a random hex key of 128 bits, the
/// shortest accepted, is above (its runs are short and many).
pub const MIN_PHRASE_GUESSES_LOG10: f64 = 24.0;

/// zxcvbn's estimates of a text's runs of one kind of character each (letters, digits, the
/// rest), summed: zxcvbn's estimate of a whole long text stops at about 10^19 and no longer
/// tells a phrase from a random key, while each run is short enough for it.
fn phrase_guesses_log10(text: &str) -> f64 {
    let kind = |c: char| {
        if c.is_alphabetic() {
            0
        } else if c.is_ascii_digit() {
            1
        } else {
            2
        }
    };
    let mut total = 0.0;
    let mut run = String::new();
    let mut chars = text.chars().take(100).peekable();
    while let Some(c) = chars.next() {
        run.push(c);
        if chars.peek().is_none_or(|next| kind(*next) != kind(c)) {
            total += zxcvbn::zxcvbn(&run, &CONTEXT_WORDS)
                .guesses_log10()
                .max(0.0);
            run.clear();
        }
    }
    total
}

/// Refuses a signing key with too little variety for production (see
/// [`MIN_JWT_KEY_DISTINCT_BYTES`]) or one that is guessable ([`guessable`]).
pub fn check_key_variety(var: &'static str, secret: &SecretString) -> Result<(), JwtKeyError> {
    if too_uniform(secret) {
        return Err(JwtKeyError::TooUniform { var });
    }
    if guessable(secret) {
        return Err(JwtKeyError::Guessable { var });
    }
    Ok(())
}

impl JwtAuthority {
    /// `current` signs; `previous` (during a rotation) still verifies.
    pub fn new(
        current: &SecretString,
        previous: Option<&SecretString>,
        issuer: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Result<Self, JwtKeyError> {
        const CURRENT: &str = "JWT_SECRET_KEY";
        const PREVIOUS: &str = "JWT_PREVIOUS_SECRET_KEY";
        let (kid, bytes) = key(CURRENT, current)?;
        let encoding =
            EncodingKey::from_secret(bytes).map_err(|_| JwtKeyError::Unusable { var: CURRENT })?;
        let decoding =
            DecodingKey::from_secret(bytes).map_err(|_| JwtKeyError::Unusable { var: CURRENT })?;
        let mut keys = vec![Key {
            kid: kid.clone(),
            decoding,
        }];
        if let Some(previous) = previous {
            let (old_kid, old) = key(PREVIOUS, previous)?;
            if old_kid == kid {
                return Err(JwtKeyError::SameAsCurrent { var: PREVIOUS });
            }
            let decoding = DecodingKey::from_secret(old)
                .map_err(|_| JwtKeyError::Unusable { var: PREVIOUS })?;
            keys.push(Key {
                kid: old_kid,
                decoding,
            });
        }
        Ok(Self {
            kid,
            encoding,
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            lifetime,
            leeway_seconds: 30,
        })
    }

    /// How long an issued token lives.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Issues an access token for `subject` at `now`, with id `jti`.
    pub fn issue(
        &self,
        subject: &Subject,
        jti: Uuid,
        now: DateTime<Utc>,
    ) -> Result<String, JwtError> {
        let claims = Claims {
            sub: subject.user,
            org: subject.organization,
            role: subject.role.clone(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + self.lifetime).timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti,
            auth_time: subject.auth_time.timestamp(),
            typ: ACCESS_TOKEN_TYPE.to_owned(),
            sid: subject.session,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|_| JwtError::Malformed)
    }

    /// Verifies `token` at `now` and returns its claims.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(JwtError::Algorithm);
        }
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| &k.kid == kid)
                .ok_or(JwtError::UnknownKey)?,
            None => return Err(JwtError::UnknownKey),
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims = ["exp", "nbf", "iss", "aud", "sub"]
            .into_iter()
            .map(str::to_owned)
            .collect::<HashSet<_>>();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => JwtError::Signature,
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        JwtError::Algorithm
                    }
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                        JwtError::IssuerOrAudience
                    }
                    ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => JwtError::Claims,
                    _ => JwtError::Malformed,
                }
            })?;
        let claims = data.claims;
        if claims.typ != ACCESS_TOKEN_TYPE {
            return Err(JwtError::Type);
        }
        let now = now.timestamp();
        if now >= claims.exp.saturating_add(self.leeway_seconds) {
            return Err(JwtError::Expired);
        }
        if now.saturating_add(self.leeway_seconds) < claims.nbf {
            return Err(JwtError::NotYetValid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const KEY: &str = "a-test-signing-key-of-at-least-32-bytes!";
    const OTHER: &str = "another-signing-key-of-at-least-32-bytes";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn authority(current: &str, previous: Option<&str>) -> JwtAuthority {
        let previous = previous.map(secret);
        JwtAuthority::new(
            &secret(current),
            previous.as_ref(),
            "rhesis",
            "rhesis-api",
            Duration::minutes(15),
        )
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn subject() -> Subject {
        Subject {
            user: Uuid::from_u128(1),
            organization: Some(Uuid::from_u128(2)),
            role: Some("admin".to_owned()),
            auth_time: now() - Duration::minutes(1),
            session: None,
        }
    }

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    /// A token with the given header and claims, signed by `key` with HMAC-SHA256.
    fn forge(header: &str, claims: &serde_json::Value, key: &str) -> String {
        use hmac_for_tests::sign;
        let message = format!("{}.{}", b64(header), b64(&claims.to_string()));
        format!(
            "{message}.{}",
            URL_SAFE_NO_PAD.encode(sign(key.as_bytes(), message.as_bytes()))
        )
    }

    mod hmac_for_tests {
        use sha2::{Digest, Sha256};

        /// HMAC-SHA256 (RFC 2104), written out so that the tests forge tokens independently
        /// of the library under test.
        pub(super) fn sign(key: &[u8], message: &[u8]) -> Vec<u8> {
            let mut block = [0u8; 64];
            if key.len() > 64 {
                block[..32].copy_from_slice(&Sha256::digest(key));
            } else {
                block[..key.len()].copy_from_slice(key);
            }
            let inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
            let outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
            let inner_hash = Sha256::new()
                .chain_update(&inner)
                .chain_update(message)
                .finalize();
            Sha256::new()
                .chain_update(&outer)
                .chain_update(inner_hash)
                .finalize()
                .to_vec()
        }
    }

    fn claims_json(a: &JwtAuthority) -> serde_json::Value {
        let token = a.issue(&subject(), Uuid::from_u128(9), now()).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn issued_tokens_verify_and_carry_every_claim() {
        let a = authority(KEY, None);
        let token = a.issue(&subject(), Uuid::from_u128(9), now()).unwrap();
        let claims = a.verify(&token, now()).unwrap();
        assert_eq!(claims.sub, Uuid::from_u128(1));
        assert_eq!(claims.org, Some(Uuid::from_u128(2)));
        assert_eq!(claims.role.as_deref(), Some("admin"));
        assert_eq!(
            (claims.iss.as_str(), claims.aud.as_str()),
            ("rhesis", "rhesis-api")
        );
        assert_eq!(claims.jti, Uuid::from_u128(9));
        assert_eq!(claims.exp - claims.iat, 15 * 60);
        assert_eq!(claims.auth_time, (now() - Duration::minutes(1)).timestamp());
        assert_eq!(claims.typ, "access");
        // Our own forging helper agrees with the library on a valid token.
        let header = format!(
            r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
            key_id(KEY.as_bytes())
        );
        let forged = forge(&header, &claims_json(&a), KEY);
        assert!(a.verify(&forged, now()).is_ok());
    }

    #[test]
    fn attacks_are_refused_each_for_its_reason() {
        let a = authority(KEY, None);
        let kid = key_id(KEY.as_bytes());
        let good = claims_json(&a);
        let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#);
        let with = |field: &str, value: serde_json::Value| {
            let mut c = good.clone();
            c[field] = value;
            c
        };
        let without = |field: &str| {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove(field);
            c
        };
        let token = a.issue(&subject(), Uuid::from_u128(9), now()).unwrap();
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        let unsigned = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&good.to_string())
        );
        let cases: Vec<(&str, String, JwtError)> = vec![
            ("tampered signature", tampered, JwtError::Signature),
            ("alg none", unsigned, JwtError::Malformed),
            (
                "another key",
                forge(&header, &good, OTHER),
                JwtError::Signature,
            ),
            (
                "RS256 header",
                forge(
                    &format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#),
                    &good,
                    KEY,
                ),
                JwtError::Algorithm,
            ),
            (
                "HS512 header",
                forge(
                    &format!(r#"{{"alg":"HS512","typ":"JWT","kid":"{kid}"}}"#),
                    &good,
                    KEY,
                ),
                JwtError::Algorithm,
            ),
            (
                "no kid",
                forge(r#"{"alg":"HS256","typ":"JWT"}"#, &good, KEY),
                JwtError::UnknownKey,
            ),
            (
                "unknown kid",
                forge(r#"{"alg":"HS256","typ":"JWT","kid":"0000"}"#, &good, KEY),
                JwtError::UnknownKey,
            ),
            (
                "wrong issuer",
                forge(&header, &with("iss", "evil".into()), KEY),
                JwtError::IssuerOrAudience,
            ),
            (
                "wrong audience",
                forge(&header, &with("aud", "other".into()), KEY),
                JwtError::IssuerOrAudience,
            ),
            (
                "missing exp",
                forge(&header, &without("exp"), KEY),
                JwtError::Claims,
            ),
            (
                "missing nbf",
                forge(&header, &without("nbf"), KEY),
                JwtError::Claims,
            ),
            (
                "missing sub",
                forge(&header, &without("sub"), KEY),
                JwtError::Claims,
            ),
            (
                "missing iss",
                forge(&header, &without("iss"), KEY),
                JwtError::Claims,
            ),
            (
                "missing aud",
                forge(&header, &without("aud"), KEY),
                JwtError::Claims,
            ),
            (
                "not a uuid subject",
                forge(&header, &with("sub", "admin".into()), KEY),
                JwtError::Claims,
            ),
            (
                "refresh type",
                forge(&header, &with("typ", "refresh".into()), KEY),
                JwtError::Type,
            ),
            ("garbage", "not.a.jwt".to_owned(), JwtError::Malformed),
            ("empty", String::new(), JwtError::Malformed),
        ];
        for (name, token, expected) in cases {
            assert_eq!(a.verify(&token, now()), Err(expected), "{name}");
        }
    }

    #[test]
    fn expiry_and_not_before_are_judged_at_the_given_time() {
        let a = authority(KEY, None);
        let token = a.issue(&subject(), Uuid::from_u128(9), now()).unwrap();
        assert!(
            a.verify(
                &token,
                now() + Duration::minutes(15) + Duration::seconds(29)
            )
            .is_ok(),
            "leeway"
        );
        assert_eq!(
            a.verify(
                &token,
                now() + Duration::minutes(15) + Duration::seconds(30)
            ),
            Err(JwtError::Expired)
        );
        assert!(
            a.verify(&token, now() - Duration::seconds(30)).is_ok(),
            "leeway"
        );
        assert_eq!(
            a.verify(&token, now() - Duration::seconds(31)),
            Err(JwtError::NotYetValid)
        );
    }

    #[test]
    fn a_previous_key_verifies_during_rotation_and_only_then() {
        let old = authority(OTHER, None);
        let token = old.issue(&subject(), Uuid::from_u128(9), now()).unwrap();
        let rotating = authority(KEY, Some(OTHER));
        assert!(rotating.verify(&token, now()).is_ok());
        let rotated = authority(KEY, None);
        assert_eq!(rotated.verify(&token, now()), Err(JwtError::UnknownKey));
        // New tokens are signed with the current key.
        let fresh = rotating
            .issue(&subject(), Uuid::from_u128(10), now())
            .unwrap();
        assert!(rotated.verify(&fresh, now()).is_ok());
    }

    #[test]
    fn weak_or_repeated_keys_are_refused_without_showing_them() {
        let short = secret("short");
        let error = JwtAuthority::new(&short, None, "i", "a", Duration::minutes(1)).unwrap_err();
        assert_eq!(
            error,
            JwtKeyError::TooShort {
                var: "JWT_SECRET_KEY"
            }
        );
        assert!(!error.to_string().contains("short"));
        let same = JwtAuthority::new(
            &secret(KEY),
            Some(&secret(KEY)),
            "i",
            "a",
            Duration::minutes(1),
        );
        assert_eq!(
            same.unwrap_err(),
            JwtKeyError::SameAsCurrent {
                var: "JWT_PREVIOUS_SECRET_KEY"
            }
        );
        let a = authority(KEY, None);
        assert!(!format!("{a:?}").contains(KEY));
    }
}
