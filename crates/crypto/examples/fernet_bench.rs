//! Throughput of the key ring and the field cipher, for `cargo xtask bench crypto`.
//! Prints one JSON object per line: `{"op": ..., "ops_per_sec": ...}`.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)] // a benchmark program

use std::hint::black_box;
use std::time::Instant;

use chrono::DateTime;
use crypto::{FieldCipher, KeyRing, SealContext};
use secrecy::SecretString;
use uuid::Uuid;

const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// A 40-byte secret, the size of a typical provider API key.
const SECRET: &str = "sk-proj-0123456789abcdefghijklmnopqrstuv";

fn ring(keys: &str) -> KeyRing {
    KeyRing::parse("DB_ENCRYPTION_KEY", &SecretString::from(keys.to_owned())).unwrap()
}

fn report(op: &str, n: u64, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"op\": \"{op}\", \"n\": {n}, \"ops_per_sec\": {:.0}}}",
        n as f64 / seconds
    );
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    assert_eq!(SECRET.len(), 40);
    let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let one = ring(K1);

    let started = Instant::now();
    for _ in 0..n {
        black_box(one.encrypt_at(black_box(SECRET.as_bytes()), now));
    }
    report("encrypt", n, started);

    let token = one.encrypt_at(SECRET.as_bytes(), now);
    let started = Instant::now();
    for _ in 0..n {
        black_box(one.decrypt(black_box(&token)).unwrap());
    }
    report("decrypt", n, started);

    let cipher = FieldCipher::new(ring(K1), None);
    let place = SealContext {
        table: "models",
        column: "key",
        row_id: Uuid::from_u128(1),
        organization_id: Uuid::from_u128(2),
    };
    let secret = SecretString::from(SECRET.to_owned());
    let started = Instant::now();
    for _ in 0..n {
        black_box(cipher.seal(&place, &secret, now));
    }
    report("seal (bound envelope)", n, started);

    let sealed = cipher.seal(&place, &secret, now);
    let started = Instant::now();
    for _ in 0..n {
        black_box(cipher.open(&place, black_box(&sealed), now).unwrap());
    }
    report("open (bound envelope)", n, started);

    // Rotation in memory: decrypt under the old key, encrypt under the new one.
    let rotated = FieldCipher::new(ring(&format!("{K2},{K1}")), None);
    let started = Instant::now();
    for _ in 0..n {
        black_box(rotated.reseal(&place, black_box(&sealed), now).unwrap());
    }
    report("rotate (reseal)", n, started);
}
