//! Cryptography of the platform.
//!
//! - [`KeyRing`]: Fernet keys in the format of Python's `cryptography.fernet`, newest first:
//!   encrypt with the first, decrypt with any.
//! - [`FieldCipher`]: what the database columns hold. A secret is sealed together with its
//!   place (table, column, row, organization) so that a ciphertext copied elsewhere does not
//!   open; bare legacy tokens and, inside an explicit window, legacy plaintext are still read
//!   and reported so that re-encryption can rewrite them.
//!
//! JWTs and API tokens arrive with the authenticated API.

mod envelope;
mod keyring;

pub use envelope::{FieldCipher, OpenError, Opened, Provenance, SealContext};
pub use keyring::{DecryptError, KeyRing, KeyRingError, looks_like_fernet_token};
