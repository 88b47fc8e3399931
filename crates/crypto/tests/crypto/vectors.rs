use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use chrono::{DateTime, Utc};
use crypto::KeyRing;
use secrecy::SecretString;
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/crypto/vectors/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ring(vector: &Value) -> KeyRing {
    let key = vector["secret"].as_str().unwrap().to_owned();
    KeyRing::parse("DB_ENCRYPTION_KEY", &SecretString::from(key)).unwrap()
}

fn now(vector: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(vector["now"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn generate_vectors_decrypt_and_our_tokens_have_the_same_layout() {
    let vectors = load("generate");
    assert!(!vectors.is_empty());
    for v in vectors {
        let ring = ring(&v);
        let token = v["token"].as_str().unwrap();
        let src = v["src"].as_str().unwrap().as_bytes();
        let (plaintext, key) = ring.decrypt(token).unwrap();
        assert_eq!((plaintext.as_slice(), key), (src, 0));

        // The IV is random, so our token differs; version, timestamp and length agree.
        let ours = ring.encrypt_at(src, now(&v));
        let (theirs, mine) = (
            URL_SAFE.decode(token).unwrap(),
            URL_SAFE.decode(&ours).unwrap(),
        );
        assert_eq!(theirs[..9], mine[..9], "version byte and timestamp");
        assert_eq!(theirs.len(), mine.len());
        assert_eq!(ring.decrypt(&ours).unwrap().0.as_slice(), src);
    }
}

#[test]
fn verify_vectors_pass() {
    let vectors = load("verify");
    assert!(!vectors.is_empty());
    for v in vectors {
        let ttl = v["ttl_sec"].as_u64().unwrap();
        let (plaintext, _) = ring(&v)
            .decrypt_with_ttl_at(v["token"].as_str().unwrap(), ttl, now(&v))
            .unwrap();
        assert_eq!(plaintext.as_slice(), v["src"].as_str().unwrap().as_bytes());
    }
}

#[test]
fn invalid_vectors_are_refused() {
    let vectors = load("invalid");
    assert_eq!(vectors.len(), 8);
    for v in vectors {
        let ttl = v["ttl_sec"].as_u64().unwrap();
        let result = ring(&v).decrypt_with_ttl_at(v["token"].as_str().unwrap(), ttl, now(&v));
        assert!(result.is_err(), "{} must be refused", v["desc"]);
    }
}
