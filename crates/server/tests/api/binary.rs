//! The real binary: JSON logs with the request id, and refusals that name no secret.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::TestDatabase;

const BINARY: &str = env!("CARGO_BIN_EXE_rhesis-server");
const JWT_KEY: &str = "a-signing-key-for-the-binary-tests-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_binary_logs_json_lines_carrying_the_request_id() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let mut child = Command::new(BINARY)
        .arg("serve")
        .env_clear()
        .env("JWT_SECRET_KEY", JWT_KEY)
        .env("APP_ENV", "test")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", db.app_url())
        .env("DB_ENCRYPTION_KEY", test_support::random_fernet_key())
        .env("HTTP_WORKERS", "1")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/health/ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    let response = loop {
        match client.get(&url).send().await {
            Ok(response) => break response,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the server did not come up: {e}"),
        }
    };
    assert_eq!(response.status(), 200);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // Stop the server and read everything it logged.
    child.kill().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    child.wait().unwrap();
    let events: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let completed = events
        .iter()
        .find(|e| e["message"] == "request completed" && e["span"]["request_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no access log line for {id} in {lines:#?}"));
    assert_eq!(completed["status"], 200);
    assert_eq!(completed["span"]["route"], "/health/ready");
    assert_eq!(completed["span"]["method"], "GET");
    assert!(completed["latency_ms"].is_number());
}

#[tokio::test]
async fn the_binary_refuses_an_unfit_role_in_production_without_printing_the_password() {
    let db = TestDatabase::new().await;
    let owner_url = url::Url::parse(&db.owner_url()).unwrap();
    let password = owner_url.password().unwrap().to_owned();
    let output = Command::new(BINARY)
        .arg("check-config")
        .env_clear()
        .env("JWT_SECRET_KEY", JWT_KEY)
        .env("DATABASE_URL", db.owner_url())
        .env("DB_ENCRYPTION_KEY", test_support::random_fernet_key())
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "production is the default profile and must refuse"
    );
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("refusing to run in production"), "{text}");
    assert!(text.contains("owns tables"), "{text}");
    assert!(!text.contains(&password), "the password leaked: {text}");

    let output = Command::new(BINARY)
        .arg("check-config")
        .env_clear()
        .env("JWT_SECRET_KEY", JWT_KEY)
        .env("DATABASE_URL", db.app_url())
        .env("DB_ENCRYPTION_KEY", test_support::random_fernet_key())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // No key, or a malformed one: a clear error naming the variable, never the value.
    let output = Command::new(BINARY)
        .arg("check-config")
        .env_clear()
        .env("JWT_SECRET_KEY", JWT_KEY)
        .env("DATABASE_URL", db.app_url())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DB_ENCRYPTION_KEY is required"));
    let good = test_support::random_fernet_key();
    let output = Command::new(BINARY)
        .arg("check-config")
        .env_clear()
        .env("JWT_SECRET_KEY", JWT_KEY)
        .env("DATABASE_URL", db.app_url())
        .env("DB_ENCRYPTION_KEY", format!("{good},short-key"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("DB_ENCRYPTION_KEY: key #2 is not a Fernet key"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&good) && !stderr.contains("short-key"),
        "{stderr}"
    );

    // The plaintext migration window is refused in production.
    let output = Command::new(BINARY)
        .arg("check-config")
        .env_clear()
        .env("JWT_SECRET_KEY", JWT_KEY)
        .env("DATABASE_URL", db.app_url())
        .env("DB_ENCRYPTION_KEY", &good)
        .env("DB_ENCRYPTION_PLAINTEXT_UNTIL", "2999-01-01T00:00:00Z")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("DB_ENCRYPTION_PLAINTEXT_UNTIL is refused in production"),
        "{stderr}"
    );

    // No signing key, or a short one: refused, naming the variable and never the value.
    for (env, expected) in [
        (None, "JWT_SECRET_KEY is required"),
        (
            Some("k3y-tiny-but-secret"),
            "JWT_SECRET_KEY must be at least 32 bytes",
        ),
    ] {
        let mut command = Command::new(BINARY);
        command
            .arg("check-config")
            .env_clear()
            .env("DATABASE_URL", db.app_url())
            .env("DB_ENCRYPTION_KEY", &good);
        if let Some(key) = env {
            command.env("JWT_SECRET_KEY", key);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("k3y-tiny"), "{stderr}");
    }

    // No database URL at all: a clear error naming the variable.
    let output = Command::new(BINARY)
        .arg("check-config")
        .env_clear()
        .env("JWT_SECRET_KEY", JWT_KEY)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL is required"));
}
