//! Cryptography of the platform.
//!
//! - [`KeyRing`]: Fernet keys in the format of Python's `cryptography.fernet`, newest first:
//!   encrypt with the first, decrypt with any.
//! - [`FieldCipher`]: what the database columns hold. A secret is sealed together with its
//!   place (table, column, row, organization) so that a ciphertext copied elsewhere does not
//!   open; bare legacy tokens and, inside an explicit window, legacy plaintext are still read
//!   and reported so that re-encryption can rewrite them.
//!
//! - API tokens: `rh-` + 32 random bytes, their SHA-256 digest for lookup, and a
//!   constant-time comparison.
//!
//! - [`JwtAuthority`]: HS256 access tokens, verified with an injected time.

mod api_token;
mod audit;
mod envelope;
mod jwt;
mod keyring;

pub use api_token::{API_TOKEN_PREFIX, ApiTokenValue, constant_time_eq, token_digest};
pub use audit::{
    AUDIT_GENESIS, AuditChainKey, AuditKeyError, AuditLink, MIN_AUDIT_KEY_BYTES, audit_hash_hex,
    parse_audit_hash, unkeyed_audit_hash,
};
pub use envelope::{FieldCipher, OpenError, Opened, Provenance, SealContext};
pub use jwt::{
    ACCESS_TOKEN_TYPE, Claims, JwtAuthority, JwtError, JwtKeyError, MIN_ENCODED_KEY_BITS,
    MIN_JWT_KEY_BYTES, MIN_JWT_KEY_DISTINCT_BYTES, MIN_KEY_GUESSES_LOG10, MIN_PHRASE_GUESSES_LOG10,
    Subject, check_key_variety, guessable, too_uniform,
};
pub use keyring::{DecryptError, KeyRing, KeyRingError, looks_like_fernet_token};

/// A 64-byte key for `purpose`, derived from `secret` with HKDF-SHA256: one configured secret
/// serves several uses without one use's key being another's.
pub fn derive_subkey(secret: &[u8], purpose: &str) -> Option<[u8; 64]> {
    let mut key = [0_u8; 64];
    hkdf::Hkdf::<sha2::Sha256>::new(None, secret)
        .expand(purpose.as_bytes(), &mut key)
        .ok()?;
    Some(key)
}
