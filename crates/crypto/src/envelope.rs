//! Secrets bound to their place.
//!
//! Fernet has no associated data: a token copied from one row into another (say into another
//! organization's endpoint whose URL an attacker controls) would decrypt there. So what the
//! project encrypts is an envelope holding the secret and its context — table, column, row id,
//! organization id — and opening checks that context against the row being read.
//!
//! Envelope (version 1), the plaintext of the Fernet token:
//! `NUL "rh-sealed" 0x01 | len(table) table | len(column) column | row id (16) | org id (16) | secret`.
//! The leading NUL cannot begin a legacy secret (those are text), so the two never mix up.

use chrono::{DateTime, Utc};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::keyring::{KeyRing, looks_like_fernet_token};

const MAGIC: &[u8] = b"\0rh-sealed\x01";

/// Where a secret lives. Part of what is sealed, and checked when it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext {
    pub table: &'static str,
    pub column: &'static str,
    pub row_id: Uuid,
    pub organization_id: Uuid,
}

/// How a stored value was found. Anything but `Current` is rewritten by re-encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Sealed and bound, under the primary key.
    Current,
    /// Sealed and bound, under an older key (its position in the ring).
    OlderKey(usize),
    /// A bare Fernet token of the secret, as the Python backend wrote it (key position).
    LegacyUnbound(usize),
    /// Not encrypted at all: data from before encryption, read inside the migration window.
    LegacyPlaintext,
}

impl Provenance {
    pub fn is_current(self) -> bool {
        self == Self::Current
    }
}

/// An opened secret and how it was stored.
pub struct Opened {
    pub secret: SecretString,
    pub provenance: Provenance,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("secret", &"[REDACTED]")
            .field("provenance", &self.provenance)
            .finish()
    }
}

/// Why a stored value did not open. None of these carries the secret or the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shaped like a Fernet token, but no key of the ring opens it: a wrong or missing key,
    /// or tampering. Never treated as plaintext.
    #[error("the value does not decrypt under any configured key")]
    WrongKey,
    /// A sealed secret of another place: the ciphertext was moved or copied.
    #[error(
        "the sealed value belongs to {found_table}.{found_column} of row {found_row}, not here"
    )]
    Misplaced {
        found_table: String,
        found_column: String,
        found_row: Uuid,
    },
    /// A sealed envelope that cannot be parsed, or a secret that is not UTF-8.
    #[error("the decrypted value is malformed")]
    Malformed,
    /// Plaintext outside the migration window (or with no window configured).
    #[error("the column holds plaintext and the plaintext migration window is closed")]
    PlaintextRefused,
    /// A bare Fernet token, bound to no place (as the Python backend wrote them), outside its
    /// migration window: it would open in any row, column or tenant it was copied to.
    #[error("the column holds an unbound token and the unbound migration window is closed")]
    UnboundRefused,
}

/// The cipher of the secret columns: a key ring and the windows in which legacy values
/// (plaintext, and bare tokens bound to no place) still open.
#[derive(Debug)]
pub struct FieldCipher {
    ring: KeyRing,
    plaintext_until: Option<DateTime<Utc>>,
    unbound_until: Option<DateTime<Utc>>,
}

fn encode(context: &SealContext, secret: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(
        MAGIC.len() + 2 + context.table.len() + context.column.len() + 32 + secret.len(),
    ));
    out.extend_from_slice(MAGIC);
    for part in [context.table, context.column] {
        // Table and column names are short identifiers of ours; longer ones are cut, which
        // can only make a name mismatch, never a match.
        let bytes = &part.as_bytes()[..part.len().min(255)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(context.row_id.as_bytes());
    out.extend_from_slice(context.organization_id.as_bytes());
    out.extend_from_slice(secret.as_bytes());
    out
}

/// Splits an envelope into (table, column, row, org, secret).
fn decode(body: &[u8]) -> Option<(&str, &str, Uuid, Uuid, &[u8])> {
    let rest = body.strip_prefix(MAGIC)?;
    let (table, rest) = take_short(rest)?;
    let (column, rest) = take_short(rest)?;
    let (row, rest) = rest.split_at_checked(16)?;
    let (org, secret) = rest.split_at_checked(16)?;
    Some((
        std::str::from_utf8(table).ok()?,
        std::str::from_utf8(column).ok()?,
        Uuid::from_slice(row).ok()?,
        Uuid::from_slice(org).ok()?,
        secret,
    ))
}

fn take_short(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    rest.split_at_checked(usize::from(len))
}

impl FieldCipher {
    /// `plaintext_until`: the end of the legacy-plaintext migration window, if one is open.
    /// Bare tokens open only inside a window set by [`FieldCipher::with_unbound_until`].
    pub fn new(ring: KeyRing, plaintext_until: Option<DateTime<Utc>>) -> Self {
        Self {
            ring,
            plaintext_until,
            unbound_until: None,
        }
    }

    /// `unbound_until`: the end of the window in which bare Fernet tokens (unbound, as the
    /// Python backend wrote them) still open, until re-encryption has bound them.
    #[must_use]
    pub fn with_unbound_until(mut self, unbound_until: Option<DateTime<Utc>>) -> Self {
        self.unbound_until = unbound_until;
        self
    }

    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// Seals `secret` for `context` under the primary key.
    pub fn seal(&self, context: &SealContext, secret: &SecretString, now: DateTime<Utc>) -> String {
        self.ring
            .encrypt_at(&encode(context, secret.expose_secret()), now)
    }

    /// Opens a stored value for the row described by `context`.
    pub fn open(
        &self,
        context: &SealContext,
        stored: &str,
        now: DateTime<Utc>,
    ) -> Result<Opened, OpenError> {
        if !looks_like_fernet_token(stored) {
            return match self.plaintext_until {
                Some(until) if now < until => Ok(Opened {
                    secret: SecretString::from(stored.to_owned()),
                    provenance: Provenance::LegacyPlaintext,
                }),
                _ => Err(OpenError::PlaintextRefused),
            };
        }
        let (plaintext, key) = self.ring.decrypt(stored).map_err(|_| OpenError::WrongKey)?;
        let Some((table, column, row, org, secret)) = decode(&plaintext) else {
            if plaintext.starts_with(MAGIC) {
                return Err(OpenError::Malformed);
            }
            if self.unbound_until.is_none_or(|until| now >= until) {
                return Err(OpenError::UnboundRefused);
            }
            let secret = std::str::from_utf8(&plaintext).map_err(|_| OpenError::Malformed)?;
            return Ok(Opened {
                secret: SecretString::from(secret.to_owned()),
                provenance: Provenance::LegacyUnbound(key),
            });
        };
        if table != context.table
            || column != context.column
            || row != context.row_id
            || org != context.organization_id
        {
            return Err(OpenError::Misplaced {
                found_table: table.to_owned(),
                found_column: column.to_owned(),
                found_row: row,
            });
        }
        let secret = std::str::from_utf8(secret).map_err(|_| OpenError::Malformed)?;
        Ok(Opened {
            secret: SecretString::from(secret.to_owned()),
            provenance: if key == 0 {
                Provenance::Current
            } else {
                Provenance::OlderKey(key)
            },
        })
    }

    /// Opens `stored` and, unless it is already current, seals it again for `context`.
    /// `Ok(None)` means the value is current and needs no write.
    pub fn reseal(
        &self,
        context: &SealContext,
        stored: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(String, Provenance)>, OpenError> {
        let opened = self.open(context, stored, now)?;
        if opened.provenance.is_current() {
            return Ok(None);
        }
        Ok(Some((
            self.seal(context, &opened.secret, now),
            opened.provenance,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn cipher(keys: &str, plaintext_until: Option<DateTime<Utc>>) -> FieldCipher {
        let ring =
            KeyRing::parse("DB_ENCRYPTION_KEY", &SecretString::from(keys.to_owned())).unwrap();
        FieldCipher::new(ring, plaintext_until)
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn place(row: u128, org: u128) -> SealContext {
        SealContext {
            table: "models",
            column: "key",
            row_id: Uuid::from_u128(row),
            organization_id: Uuid::from_u128(org),
        }
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn a_sealed_secret_opens_only_in_its_place() {
        let cipher = cipher(K1, None);
        let sealed = cipher.seal(&place(1, 10), &secret("sk-provider-key"), now());
        let opened = cipher.open(&place(1, 10), &sealed, now()).unwrap();
        assert_eq!(opened.secret.expose_secret(), "sk-provider-key");
        assert_eq!(opened.provenance, Provenance::Current);

        for elsewhere in [
            place(2, 10), // another row
            place(1, 11), // another organization
            SealContext {
                column: "auth_token",
                ..place(1, 10)
            }, // another column
            SealContext {
                table: "endpoints",
                ..place(1, 10)
            }, // another table
        ] {
            let error = cipher.open(&elsewhere, &sealed, now()).unwrap_err();
            assert!(
                matches!(error, OpenError::Misplaced { .. }),
                "{elsewhere:?}: {error:?}"
            );
            assert!(!error.to_string().contains("sk-provider-key"));
        }
    }

    #[test]
    fn rotation_reports_older_keys_and_reseals_under_the_primary() {
        let sealed = cipher(K1, None).seal(&place(1, 10), &secret("s"), now());
        let rotated = cipher(&format!("{K2},{K1}"), None);
        assert_eq!(
            rotated
                .open(&place(1, 10), &sealed, now())
                .unwrap()
                .provenance,
            Provenance::OlderKey(1)
        );
        let (resealed, was) = rotated
            .reseal(&place(1, 10), &sealed, now())
            .unwrap()
            .unwrap();
        assert_eq!(was, Provenance::OlderKey(1));
        let new_only = cipher(K2, None);
        let opened = new_only.open(&place(1, 10), &resealed, now()).unwrap();
        assert_eq!(
            (opened.secret.expose_secret(), opened.provenance),
            ("s", Provenance::Current)
        );
        assert!(
            rotated
                .reseal(&place(1, 10), &resealed, now())
                .unwrap()
                .is_none(),
            "already current"
        );
    }

    #[test]
    fn bare_legacy_tokens_open_only_inside_their_window_and_are_rewritten_bound() {
        let ring = KeyRing::parse("K", &secret(K1)).unwrap();
        let bare = ring.encrypt_at(b"legacy-secret", now());
        // Bound to no place, a bare token would open wherever it was copied: outside its
        // window it opens nowhere.
        for closed in [
            None,
            Some(now()),
            Some(now() - chrono::Duration::seconds(1)),
        ] {
            let cipher = cipher(K1, None).with_unbound_until(closed);
            for row in [1, 2] {
                assert_eq!(
                    cipher.open(&place(row, 10), &bare, now()).err(),
                    Some(OpenError::UnboundRefused),
                    "{closed:?}"
                );
            }
        }
        let cipher = cipher(K1, None).with_unbound_until(Some(now() + chrono::Duration::hours(1)));
        let opened = cipher.open(&place(1, 10), &bare, now()).unwrap();
        assert_eq!(opened.secret.expose_secret(), "legacy-secret");
        assert_eq!(opened.provenance, Provenance::LegacyUnbound(0));
        let (bound, _) = cipher.reseal(&place(1, 10), &bare, now()).unwrap().unwrap();
        assert!(matches!(
            cipher.open(&place(2, 10), &bound, now()),
            Err(OpenError::Misplaced { .. })
        ));
    }

    #[test]
    fn plaintext_is_read_only_inside_the_window_and_a_wrong_key_never_is() {
        let until = now() + chrono::Duration::hours(1);
        let open_window = cipher(K1, Some(until));
        let opened = open_window.open(&place(1, 10), "sk-plain", now()).unwrap();
        assert_eq!(
            (opened.secret.expose_secret(), opened.provenance),
            ("sk-plain", Provenance::LegacyPlaintext)
        );
        assert_eq!(
            open_window
                .open(&place(1, 10), "sk-plain", until)
                .unwrap_err(),
            OpenError::PlaintextRefused,
            "the window ends at its instant"
        );
        assert_eq!(
            cipher(K1, None)
                .open(&place(1, 10), "sk-plain", now())
                .unwrap_err(),
            OpenError::PlaintextRefused
        );

        // A token under a key we do not hold is an error, window or not.
        let foreign = cipher(K2, None).seal(&place(1, 10), &secret("s"), now());
        assert_eq!(
            open_window
                .open(&place(1, 10), &foreign, now())
                .unwrap_err(),
            OpenError::WrongKey
        );
        let truncated = &foreign[..foreign.len() - 8];
        assert_eq!(
            open_window
                .open(&place(1, 10), truncated, now())
                .unwrap_err(),
            OpenError::WrongKey,
            "a damaged token is not plaintext"
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let cipher = cipher(K1, None);
        let sealed = cipher.seal(&place(1, 10), &secret("hunter2-secret"), now());
        let opened = cipher.open(&place(1, 10), &sealed, now()).unwrap();
        assert!(!format!("{opened:?}").contains("hunter2"));
        assert!(!format!("{cipher:?}").contains(K1));
    }
}
