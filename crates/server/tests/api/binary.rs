//! The real binary: JSON logs with the request id, and refusals that name no secret.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::TestDatabase;

use crate::{AUDIT_KEY, free_port};

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_rhesis-server");
/// Random, as production requires (a phrase would be refused there).
pub(crate) const JWT_KEY: &str = "ulj_BnoL5CNrGy5PbqkgpBs_SVDAcN8NJn7QvjDzQ8l2";

/// Stops a server started with its standard error piped, and returns what it logged.
fn stop_and_read_log(mut child: std::process::Child) -> Vec<String> {
    child.kill().unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    child.wait().unwrap();
    lines
}

/// Waits until the server at `base` answers its liveness probe (at most 30 s).
pub(crate) async fn wait_until_live(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The development login's access token.
pub(crate) async fn local_login(client: &reqwest::Client, base: &str) -> String {
    let login: Value = client
        .post(format!("{base}/auth/local-login"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_binary_logs_json_lines_carrying_the_request_id() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let child = Command::new(BINARY)
        .arg("serve")
        .env_clear()
        .env("JWT_SECRET_KEY", JWT_KEY)
        .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
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
    let lines = stop_and_read_log(child);
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
        .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
        .env("DATABASE_URL", crate::verified(&db.owner_url()))
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
        .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
        .env("DATABASE_URL", crate::verified(&db.app_url()))
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
        .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
        .env("DATABASE_URL", crate::verified(&db.app_url()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DB_ENCRYPTION_KEY is required"));
    let good = test_support::random_fernet_key();
    let output = Command::new(BINARY)
        .arg("check-config")
        .env_clear()
        .env("JWT_SECRET_KEY", JWT_KEY)
        .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
        .env("DATABASE_URL", crate::verified(&db.app_url()))
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

    // The plaintext migration window is refused in production; the unbound-token window is
    // time-boxed there (at most 90 days ahead).
    for (var, expected) in [
        (
            "DB_ENCRYPTION_PLAINTEXT_UNTIL",
            "DB_ENCRYPTION_PLAINTEXT_UNTIL is refused in production",
        ),
        (
            "DB_ENCRYPTION_UNBOUND_UNTIL",
            "DB_ENCRYPTION_UNBOUND_UNTIL may end at most 90 days from now in production",
        ),
    ] {
        let output = Command::new(BINARY)
            .arg("check-config")
            .env_clear()
            .env("JWT_SECRET_KEY", JWT_KEY)
            .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
            .env("DATABASE_URL", crate::verified(&db.app_url()))
            .env("DB_ENCRYPTION_KEY", &good)
            .env(var, "2999-01-01T00:00:00Z")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }

    // No signing key, or a short one: refused, naming the variable and never the value.
    for (env, expected) in [
        (None, "JWT_SECRET_KEY is required"),
        (
            Some("k3y-tiny-but-secret"),
            "JWT_SECRET_KEY must be at least 32 bytes",
        ),
        // Long enough on paper, but a guessable shape.
        (
            Some("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"),
            "JWT_SECRET_KEY is guessable",
        ),
        (
            Some("passwordpasswordpasswordpassword"),
            "JWT_SECRET_KEY is guessable",
        ),
        (
            Some("!@#$!@#$!@#$!@#$!@#$!@#$!@#$!@#$"),
            "JWT_SECRET_KEY has too little variety",
        ),
        // Sixteen distinct bytes and more, but what a person types.
        (
            Some("0123456789abcdef0123456789abcdef"),
            "JWT_SECRET_KEY is guessable",
        ),
        (
            Some("qwertyuiopasdfghjklzxcvbnm1234567890"),
            "JWT_SECRET_KEY is guessable",
        ),
        // A phrase with the product's name.
        (
            Some("Rhesis-Production-JWT-Secret-Key-2026!"),
            "JWT_SECRET_KEY is guessable",
        ),
    ] {
        let mut command = Command::new(BINARY);
        command
            .arg("check-config")
            .env_clear()
            .env("DATABASE_URL", crate::verified(&db.app_url()))
            .env("DB_ENCRYPTION_KEY", &good)
            .env("AUDIT_CHAIN_KEY", AUDIT_KEY);
        if let Some(key) = env {
            command.env("JWT_SECRET_KEY", key);
        }
        let output = command.output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(env.is_none_or(|key| !stderr.contains(key)), "{stderr}");
    }

    // No audit chain key, or a short one: refused the same way.
    for (env, expected) in [
        (None, "AUDIT_CHAIN_KEY is required"),
        (
            Some("k3y-tiny-but-secret"),
            "AUDIT_CHAIN_KEY must be at least 32 bytes",
        ),
    ] {
        let mut command = Command::new(BINARY);
        command
            .arg("check-config")
            .env_clear()
            .env("JWT_SECRET_KEY", JWT_KEY)
            .env("DATABASE_URL", crate::verified(&db.app_url()))
            .env("DB_ENCRYPTION_KEY", &good);
        if let Some(key) = env {
            command.env("AUDIT_CHAIN_KEY", key);
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
        .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL is required"));
}

/// The real binary at debug level, driven through logins, token creation and use, secret
/// writes and refused made-up credentials: not one captured log line holds any of the
/// secrets involved.
#[tokio::test]
async fn no_log_line_holds_a_secret() {
    let db = TestDatabase::new().await;
    let port = free_port();
    let encryption_key = test_support::random_fernet_key();
    let password = url::Url::parse(&db.app_url())
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    let env = |command: &mut Command| {
        command
            .env_clear()
            .env("APP_ENV", "development")
            .env("JWT_SECRET_KEY", JWT_KEY)
            .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
            .env("DATABASE_URL", db.app_url())
            .env("DB_ENCRYPTION_KEY", &encryption_key)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("HTTP_WORKERS", "1")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
    };
    let mut seed = Command::new(BINARY);
    seed.arg("seed-dev");
    env(&mut seed);
    let seeded = seed.output().unwrap();
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let mut serve = Command::new(BINARY);
    serve.arg("serve");
    env(&mut serve);
    let child = serve.spawn().unwrap();

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_live(&client, &base).await;
    let jwt = local_login(&client, &base).await;
    let post = |path: &str, body: serde_json::Value, token: &str| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let created: Value = post("/api/v1/tokens", serde_json::json!({"name": "ci"}), &jwt)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_token = created["token_value"].as_str().unwrap().to_owned();
    let me = client
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    let user_id = me["user_id"].as_str().unwrap().to_owned();
    let auth_token = "endpoint-bearer-credential-4711";
    let client_secret = "endpoint-client-secret-0815";
    let model_key = "sk-model-key-abcdefghijklmnop";
    let endpoint = post(
        "/api/v1/endpoints",
        serde_json::json!({"name": "bot", "url": "https://bot.example/chat",
                           "auth_type": "client_credentials", "auth_token": auth_token,
                           "client_secret": client_secret, "client_id": "bot"}),
        &jwt,
    )
    .await
    .unwrap();
    assert_eq!(endpoint.status(), 201);
    let model = post(
        "/api/v1/models",
        serde_json::json!({"name": "m", "model_name": "gpt", "provider": "openai", "key": model_key}),
        &jwt,
    )
    .await
    .unwrap();
    assert_eq!(model.status(), 201);
    let made_up_token = "rh-madeUpTokenThatNobodyOwns0123456789abcdefghij";
    let made_up_jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.Zm9yZ2VkLXNpZ25hdHVyZQ";
    let cookie = "rh_session=planted-session-id-1234567890";
    for token in [made_up_token, made_up_jwt, "not even a token"] {
        let refused = client
            .get(format!("{base}/api/v1/me?access_token=query-secret-42"))
            .bearer_auth(token)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
    }

    let lines = stop_and_read_log(child);
    assert!(
        lines.iter().any(|l| l.contains("credential refused")),
        "the refusals are logged: {lines:#?}"
    );
    // The access log names the authenticated principal by id.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("request completed") && l.contains(&user_id)),
        "{lines:#?}"
    );
    let secrets = [
        jwt.as_str(),
        api_token.as_str(),
        auth_token,
        client_secret,
        model_key,
        made_up_token,
        made_up_jwt,
        "planted-session-id-1234567890",
        "query-secret-42",
        &password,
        &encryption_key,
        JWT_KEY,
        AUDIT_KEY,
    ];
    let seed_lines = String::from_utf8_lossy(&seeded.stderr).into_owned();
    for line in lines.iter().chain(std::iter::once(&seed_lines)) {
        for secret in secrets {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
    }
}

/// A served binary (development profile, `grace` seconds of shutdown grace) with two uploads
/// under way: their heads are in, their bodies only begun. The first can be finished with
/// the rest of its body; the second never is.
struct Uploads {
    child: std::process::Child,
    address: std::net::SocketAddr,
    finishing: std::net::TcpStream,
    _stuck: std::net::TcpStream,
    rest: Vec<u8>,
    _db: TestDatabase,
}

impl Uploads {
    async fn start(grace: u64) -> Self {
        use std::io::Write;
        let db = TestDatabase::new().await;
        let port = free_port();
        let env = |command: &mut Command| {
            command
                .env_clear()
                .env("APP_ENV", "development")
                .env("JWT_SECRET_KEY", JWT_KEY)
                .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
                .env("DATABASE_URL", db.app_url())
                .env("DB_ENCRYPTION_KEY", test_support::random_fernet_key())
                .env("BIND_ADDR", format!("127.0.0.1:{port}"))
                .env("HTTP_WORKERS", "1")
                .env("SHUTDOWN_GRACE_SECONDS", grace.to_string())
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
        };
        let mut seed = Command::new(BINARY);
        seed.arg("seed-dev");
        env(&mut seed);
        assert!(seed.output().unwrap().status.success());
        let mut serve = Command::new(BINARY);
        serve.arg("serve");
        env(&mut serve);
        let child = serve.spawn().unwrap();
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        wait_until_live(&client, &base).await;
        let jwt = local_login(&client, &base).await;
        let body = serde_json::json!({"name": "finished within the grace"}).to_string();
        let head = format!(
            "POST /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: \
             Bearer {jwt}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let begin_upload = || {
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body.as_bytes()[..5]).unwrap();
            stream
        };
        let finishing = begin_upload();
        let stuck = begin_upload();
        tokio::time::sleep(Duration::from_millis(500)).await;
        Self {
            child,
            address,
            finishing,
            _stuck: stuck,
            rest: body.as_bytes()[5..].to_vec(),
            _db: db,
        }
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Sends the rest of the first upload's body; its reply.
    fn finish(&mut self) -> String {
        use std::io::{Read, Write};
        self.finishing.write_all(&self.rest).unwrap();
        let mut reply = String::new();
        let _ = self.finishing.read_to_string(&mut reply);
        reply
    }

    /// Waits for the process to end (at most `within`); its status and its log.
    async fn exit(&mut self, within: Duration) -> (std::process::ExitStatus, Vec<String>) {
        let since = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if since.elapsed() > within {
                self.child.kill().unwrap();
                panic!("still running {within:?} later");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let lines = BufReader::new(self.child.stderr.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .collect();
        (status, lines)
    }
}

/// SIGTERM and SIGINT alike close the listener at once; a request whose body is still
/// arriving is finished; one that never finishes is given `SHUTDOWN_GRACE_SECONDS`, no more;
/// then the pool is closed and the process exits 0.
#[tokio::test]
async fn sigterm_finishes_the_requests_in_flight_then_exits_cleanly() {
    const GRACE: u64 = 4;
    for signal in ["-TERM", "-INT"] {
        let mut uploads = Uploads::start(GRACE).await;
        let stopped_at = Instant::now();
        uploads.signal(signal);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            std::net::TcpStream::connect(uploads.address).is_err(),
            "{signal}: the listener closes at once"
        );
        let reply = uploads.finish();
        assert!(
            reply.starts_with("HTTP/1.1 201"),
            "{signal}: the request in flight is finished: {reply}"
        );
        let (exit, lines) = uploads.exit(Duration::from_secs(GRACE + 20)).await;
        let waited = stopped_at.elapsed();
        assert!(exit.success(), "{signal}: a stop is a clean exit: {exit}");
        assert!(
            waited >= Duration::from_secs(GRACE - 1),
            "{signal}: the unfinished upload was given the grace: stopped after {waited:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("database pool closed")),
            "{signal}: {lines:#?}"
        );
    }
}

/// A second signal ends a stop at once, however long the grace.
#[tokio::test]
async fn a_second_signal_ends_the_grace() {
    let mut uploads = Uploads::start(60).await;
    uploads.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    uploads.signal("-TERM");
    let (exit, lines) = uploads.exit(Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit}");
    assert!(
        lines.iter().any(|l| l.contains("a second signal")),
        "{lines:#?}"
    );
}

/// SIGTERM while the database is down: the stop's own writes (here 40 kinds of counted
/// refusals, each write waiting for a connection that never comes) are bounded by
/// `STOP_WRITES_WITHIN`; the process does not hang until the orchestrator kills it.
#[tokio::test]
async fn sigterm_while_the_database_is_down_stops_within_its_bound() {
    let cluster = test_support::OutageCluster::hold().await;
    let db = TestDatabase::on_outage_cluster().await;
    let port = free_port();
    let mut child = Command::new(BINARY)
        .arg("serve")
        .env_clear()
        .env("APP_ENV", "test")
        .env("JWT_SECRET_KEY", JWT_KEY)
        .env("AUDIT_CHAIN_KEY", AUDIT_KEY)
        .env("DATABASE_URL", db.app_url())
        .env("DB_ENCRYPTION_KEY", test_support::random_fernet_key())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("HTTP_WORKERS", "1")
        .env("SHUTDOWN_GRACE_SECONDS", "1")
        .env("DATABASE_ACQUIRE_TIMEOUT_MS", "1000")
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .env("RATE_LIMIT_PER_IP_PER_MINUTE", "100000")
        .env("RATE_LIMIT_ANONYMOUS_PER_MINUTE", "100000")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_live(&client, &base).await;

    cluster.stop();
    // 40 refusals from 40 client addresses: 40 kinds counted, none recordable now.
    let mut refusals = Vec::new();
    for n in 0..40 {
        let request = client
            .get(format!("{base}/api/v1/projects"))
            .bearer_auth("not-a-token")
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .send();
        refusals.push(tokio::spawn(request));
    }
    for refusal in refusals {
        assert_eq!(refusal.await.unwrap().unwrap().status(), 401);
    }

    let stopped_at = Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // The grace, the bound on the stop's writes, and room for a busy machine.
    let bound = Duration::from_secs(1) + server::STOP_WRITES_WITHIN + Duration::from_secs(10);
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if stopped_at.elapsed() > bound {
            child.kill().unwrap();
            panic!("still running {bound:?} after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit}");
    let lines: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the stop's writes did not finish in time")),
        "{lines:#?}"
    );
    cluster.start();
}
