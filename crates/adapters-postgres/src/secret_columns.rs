//! The encrypted column type and the sealing of secrets on their way in and out of the
//! tables. Nothing outside this adapter sees ciphertext; nothing in a table is plaintext.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crypto::{FieldCipher, OpenError, Provenance, SealContext};
use domain::{SecretHint, SecretSlot};
use ports::{Clock, StoreError};
use sea_orm::DeriveValueType;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// A secret column's content: a sealed Fernet token (or, from before encryption, legacy
/// plaintext that only the migration window lets through). Its `Debug` shows nothing.
#[derive(Clone, PartialEq, Eq, DeriveValueType)]
pub struct Sealed(pub(crate) String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

/// A secret that did not open in its row. Names the place and the reason, never the value.
#[derive(Debug, thiserror::Error)]
#[error("{table}.{column} of row {row} does not open: {reason}")]
pub struct UnsealError {
    pub table: &'static str,
    pub column: &'static str,
    pub row: Uuid,
    #[source]
    pub reason: OpenError,
}

/// The field cipher with its clock, and counters of what reads found.
pub struct SecretColumns {
    cipher: FieldCipher,
    clock: Arc<dyn Clock>,
    legacy_plaintext_reads: AtomicU64,
    legacy_unbound_reads: AtomicU64,
    unopenable: AtomicU64,
}

impl std::fmt::Debug for SecretColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretColumns").finish_non_exhaustive()
    }
}

impl SecretColumns {
    pub fn new(cipher: FieldCipher, clock: Arc<dyn Clock>) -> Self {
        Self {
            cipher,
            clock,
            legacy_plaintext_reads: AtomicU64::new(0),
            legacy_unbound_reads: AtomicU64::new(0),
            unopenable: AtomicU64::new(0),
        }
    }

    pub fn cipher(&self) -> &FieldCipher {
        &self.cipher
    }

    /// The current time, from the injected clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Reads of legacy plaintext (inside the migration window) since start.
    pub fn legacy_plaintext_reads(&self) -> u64 {
        self.legacy_plaintext_reads.load(Ordering::Relaxed)
    }

    /// Reads of bare tokens bound to no place (inside their migration window) since start.
    pub fn legacy_unbound_reads(&self) -> u64 {
        self.legacy_unbound_reads.load(Ordering::Relaxed)
    }

    /// Values that did not open (wrong key, moved, plaintext refused) since start.
    pub fn unopenable(&self) -> u64 {
        self.unopenable.load(Ordering::Relaxed)
    }

    pub(crate) fn seal(&self, context: &SealContext, secret: &SecretString) -> Sealed {
        Sealed(self.cipher.seal(context, secret, self.clock.now()))
    }

    /// Opens a stored value in its row. Legacy plaintext and unbound tokens are logged (place
    /// only) and counted; a
    /// value that does not open is a security event and an error without the value.
    pub(crate) fn open(
        &self,
        context: &SealContext,
        stored: &Sealed,
    ) -> Result<SecretString, StoreError> {
        match self.cipher.open(context, &stored.0, self.clock.now()) {
            Ok(opened) => {
                let legacy = match opened.provenance {
                    Provenance::LegacyPlaintext => Some((
                        &self.legacy_plaintext_reads,
                        "plaintext",
                        "legacy plaintext read inside the migration window; run reencrypt",
                    )),
                    Provenance::LegacyUnbound(_) => Some((
                        &self.legacy_unbound_reads,
                        "unbound",
                        "unbound legacy token read inside its migration window; run reencrypt",
                    )),
                    Provenance::OlderKey(_) => {
                        tracing::debug!(
                            table = context.table,
                            column = context.column,
                            row = %context.row_id,
                            provenance = ?opened.provenance,
                            "secret read from a value that re-encryption will rewrite"
                        );
                        None
                    }
                    Provenance::Current => None,
                };
                if let Some((reads, kind, message)) = legacy {
                    reads.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(crate::metrics::LEGACY_SECRET_READS, "kind" => kind,
                        "table" => context.table, "column" => context.column)
                    .increment(1);
                    tracing::warn!(
                        table = context.table,
                        column = context.column,
                        row = %context.row_id,
                        "{message}"
                    );
                }
                Ok(opened.secret)
            }
            Err(reason) => {
                self.unopenable.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::metrics::UNOPENABLE_SECRETS,
                    "table" => context.table, "column" => context.column)
                .increment(1);
                tracing::error!(
                    security_event = "secret_unopenable",
                    table = context.table,
                    column = context.column,
                    row = %context.row_id,
                    organization = %context.organization_id,
                    reason = %reason,
                    "a stored secret did not open in its row"
                );
                Err(StoreError::Unexpected(Box::new(UnsealError {
                    table: context.table,
                    column: context.column,
                    row: context.row_id,
                    reason,
                })))
            }
        }
    }
}

/// What readers may know of a secret column: set or not, and its hint.
pub(crate) fn slot(stored: Option<&Sealed>, hint: Option<String>) -> SecretSlot {
    match stored {
        Some(_) => SecretSlot::Set {
            hint: SecretHint::from_stored(hint.unwrap_or_else(|| "...".to_owned())),
        },
        None => SecretSlot::Unset,
    }
}

/// The hint stored next to a sealed value.
pub(crate) fn hint_of(secret: &SecretString) -> String {
    SecretHint::of(secret.expose_secret()).as_str().to_owned()
}
