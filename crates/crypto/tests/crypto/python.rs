//! Both ways with Python's `cryptography.fernet`, the library the old backend wrote with.
//! `cargo xtask test` installs it into a virtual environment and names its interpreter in
//! `TEST_PYTHON`.

use std::process::Command;

use chrono::{DateTime, Utc};
use crypto::{FieldCipher, KeyRing, Provenance, SealContext};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn python(script: &str, args: &[&str]) -> String {
    let interpreter = std::env::var("TEST_PYTHON")
        .expect("TEST_PYTHON is not set: run the tests with `cargo xtask test`");
    let out = Command::new(interpreter)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

const PY_ENCRYPT: &str = "import sys
from cryptography.fernet import Fernet
print(Fernet(sys.argv[1].encode()).encrypt(sys.argv[2].encode()).decode())";

const PY_DECRYPT_HEX: &str = "import sys
from cryptography.fernet import MultiFernet, Fernet
keys = [Fernet(k.encode()) for k in sys.argv[1].split(',')]
print(MultiFernet(keys).decrypt(sys.argv[2].encode()).hex())";

fn ring(keys: &str) -> KeyRing {
    KeyRing::parse("DB_ENCRYPTION_KEY", &SecretString::from(keys.to_owned())).unwrap()
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

#[test]
fn python_tokens_decrypt_in_rust_with_the_same_key_string() {
    let token = python(PY_ENCRYPT, &[K1, "sk-from-python"]);
    let (plaintext, key) = ring(K1).decrypt(&token).unwrap();
    assert_eq!((plaintext.as_slice(), key), (&b"sk-from-python"[..], 0));
    // After rotation ("new,old") the old token still opens, under key #2.
    assert_eq!(ring(&format!("{K2},{K1}")).decrypt(&token).unwrap().1, 1);

    // As a stored column value inside its migration window: a bare legacy token, read and
    // marked for re-encryption.
    let cipher = FieldCipher::new(ring(K1), None)
        .with_unbound_until(Some(now() + chrono::Duration::days(1)));
    let place = SealContext {
        table: "models",
        column: "key",
        row_id: Uuid::from_u128(1),
        organization_id: Uuid::from_u128(2),
    };
    let opened = cipher.open(&place, &token, now()).unwrap();
    assert_eq!(opened.secret.expose_secret(), "sk-from-python");
    assert_eq!(opened.provenance, Provenance::LegacyUnbound(0));
}

#[test]
fn rust_tokens_decrypt_in_python_with_the_same_key_string() {
    let token = ring(K1).encrypt_at(b"sk-from-rust", now());
    assert_eq!(python(PY_DECRYPT_HEX, &[K1, &token]), hex(b"sk-from-rust"));

    // A sealed column value is a standard Fernet token too; its plaintext is the envelope,
    // which ends with the secret.
    let cipher = FieldCipher::new(ring(&format!("{K2},{K1}")), None);
    let place = SealContext {
        table: "endpoints",
        column: "auth_token",
        row_id: Uuid::from_u128(7),
        organization_id: Uuid::from_u128(8),
    };
    let sealed = cipher.seal(&place, &SecretString::from("bearer-xyz".to_owned()), now());
    let envelope = python(PY_DECRYPT_HEX, &[&format!("{K2},{K1}"), &sealed]);
    assert!(envelope.ends_with(&hex(b"bearer-xyz")), "{envelope}");
    assert!(envelope.starts_with(&hex(b"\0rh-sealed\x01")), "{envelope}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
