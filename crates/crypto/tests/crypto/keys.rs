//! The production key rule (`check_key_variety`, `AuditChainKey::check_variety`), attacked
//! from both sides (found by review): random keys an operator makes with ordinary tools must
//! pass (hex keys used to miss a digit and count as "too uniform"), keys derived from what a
//! person typed must not.

use crypto::{AuditChainKey, check_key_variety, guessable, too_uniform};
use secrecy::SecretString;
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `n` pseudo-random byte strings of `len` bytes (SHA-256 in counter mode: as good as
/// `openssl rand` for this purpose, and deterministic).
fn random_bytes(n: u32, len: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut out = Vec::new();
            let mut block = 0_u32;
            while out.len() < len {
                let mut h = Sha256::new();
                h.update(i.to_be_bytes());
                h.update(block.to_be_bytes());
                out.extend_from_slice(&h.finalize());
                block += 1;
            }
            out.truncate(len);
            out
        })
        .collect()
}

fn refused(key: &str) -> bool {
    let secret = SecretString::from(key.to_owned());
    check_key_variety("JWT_SECRET_KEY", &secret).is_err()
        || AuditChainKey::check_variety("AUDIT_CHAIN_KEY", &secret).is_err()
}

/// `openssl rand -hex 32` (256 random bits, 64 hex digits) is the most common way to make a
/// key. Hex has only 16 symbols, so such a key often misses a digit: fewer than 16 distinct
/// bytes, which must not count against it.
#[test]
fn random_hex_keys_of_256_bits_are_accepted() {
    let keys = random_bytes(400, 32);
    let bad: Vec<String> = keys.iter().map(|k| hex(k)).filter(|k| refused(k)).collect();
    let uniform = bad
        .iter()
        .filter(|k| too_uniform(&SecretString::from((*k).clone())))
        .count();
    assert!(
        bad.is_empty(),
        "{} of {} random 256-bit hex keys refused ({uniform} for fewer than 16 distinct bytes), \
         e.g. {:?}",
        bad.len(),
        keys.len(),
        bad.first()
    );
}

/// `openssl rand -hex 16` (128 random bits, 32 hex digits: the minimum length).
#[test]
fn random_hex_keys_of_128_bits_are_accepted() {
    let keys = random_bytes(200, 16);
    let bad = keys.iter().map(|k| hex(k)).filter(|k| refused(k)).count();
    assert_eq!(
        bad,
        0,
        "{bad} of {} random 128-bit hex keys refused",
        keys.len()
    );
}

/// `uuidgen` (122 random bits, 36 characters).
#[test]
fn random_uuids_are_accepted() {
    let keys = random_bytes(200, 16);
    let bad = keys
        .iter()
        .map(|k| {
            let mut b: [u8; 16] = k.as_slice().try_into().unwrap();
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            uuid::Uuid::from_bytes(b).to_string()
        })
        .filter(|k| refused(k))
        .count();
    assert_eq!(bad, 0, "{bad} of {} random UUIDs refused", keys.len());
}

/// Keys a person chose, as they are really made: a phrase with the product's name, or a
/// phrase run through base64 ("it looks random"). An HS256 key can be tested offline against
/// one captured token. (A hash of a password looks random to any estimate: a limit, stated in
/// operations.md.)
#[test]
fn keys_a_person_chose_are_refused() {
    let typed = [
        "Rhesis-Production-JWT-Secret-Key-2026!".to_owned(),
        "rhesis_prod_audit_chain_key_2026_v1".to_owned(),
        base64_of("my-super-secret-jwt-key"),
        base64_of("changeme-changeme-changeme"),
        hex(b"the signing key of production"),
        "0123456789abcdef0123456789abcdef".to_owned(),
        "qwertyuiopasdfghjklzxcvbnm1234567890".to_owned(),
        "z".repeat(40),
    ];
    let passed: Vec<&String> = typed
        .iter()
        .filter(|k| {
            let secret = SecretString::from((*k).clone());
            !too_uniform(&secret) && !guessable(&secret)
        })
        .collect();
    assert!(passed.is_empty(), "accepted in production: {passed:?}");
}

fn base64_of(text: &str) -> String {
    base64_bytes(text.as_bytes())
}

fn base64_bytes(bytes: &[u8]) -> String {
    // Standard base64 without a dependency (the crate's own `base64` is not re-exported).
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `n` pseudo-random byte strings of `len` bytes, from `seed` (another stream than
/// [`random_bytes`]).
fn seeded_bytes(seed: u32, n: u32, len: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut out = Vec::new();
            let mut block = 0_u32;
            while out.len() < len {
                let mut h = Sha256::new();
                h.update(seed.to_be_bytes());
                h.update(i.to_be_bytes());
                h.update(block.to_be_bytes());
                out.extend_from_slice(&h.finalize());
                block += 1;
            }
            out.truncate(len);
            out
        })
        .collect()
}

/// Random keys of the shapes ordinary tools make (found by review: about one alphanumeric
/// `pwgen -s 32` key or `openssl rand -base64 24` key in a hundred was read as a phrase and
/// refused).
#[test]
fn random_keys_of_common_shapes_are_accepted() {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const PRINTABLE: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*()-_=+[]{};:,.<>/?~";
    let pick = |alphabet: &'static [u8]| {
        move |k: &Vec<u8>| -> String {
            k.iter()
                .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
                .collect()
        }
    };
    let shapes: [(&str, Vec<String>); 4] = [
        (
            "openssl rand -base64 24",
            seeded_bytes(2, 300, 24)
                .iter()
                .map(|k| base64_bytes(k))
                .collect(),
        ),
        (
            "openssl rand -base64 32",
            seeded_bytes(1, 300, 32)
                .iter()
                .map(|k| base64_bytes(k))
                .collect(),
        ),
        (
            "pwgen -s 32",
            seeded_bytes(5, 300, 32).iter().map(pick(ALNUM)).collect(),
        ),
        (
            "pwgen -sy 40",
            seeded_bytes(6, 300, 40)
                .iter()
                .map(pick(PRINTABLE))
                .collect(),
        ),
    ];
    for (shape, keys) in shapes {
        let bad: Vec<&String> = keys.iter().filter(|k| refused(k)).collect();
        assert!(
            bad.is_empty(),
            "{shape}: {} refused, e.g. {:?}",
            bad.len(),
            bad.first()
        );
    }
}

/// A phrase refused for its few distinct letters is refused in base64 too (found by review).
#[test]
fn an_encoded_phrase_is_judged_as_the_phrase() {
    let phrase = "correct horse battery staple correct horse battery staple";
    assert!(refused(phrase));
    assert!(refused(&base64_of(phrase)));
}
