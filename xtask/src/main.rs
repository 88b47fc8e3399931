//! Project tasks, as a plain binary: `cargo xtask <task>`.
//!
//! - `dev`: the server, ready to use, on a fresh machine (private PostgreSQL if needed).
//! - `test`: every test of the workspace against real PostgreSQL.
//! - `migrate up|down|status|fresh`: migrations as the owner role.
//! - `audit`: cargo-deny (advisories, licenses, bans, sources), offline when it must be.
//! - `tls-scan`: testssl.sh against the server's own TLS listener.
//! - `lint`: fmt, clippy and audit; `ci`: lint, then test.
//! - `gen-keys`: fresh secrets in the formats the server expects.
//! - `reencrypt [--dry-run]`: re-encryption of the development database.
//! - `bench crypto`: throughput of the field cipher (against Python) and of re-encryption.
//! - `bench http`: the authenticated list through the full stack against a bare handler,
//!   and the limiters' memory under a flood of distinct client addresses.

#![allow(clippy::print_stdout)] // a command-line tool talks on standard output

mod audit;
mod bench;
mod deploy;
mod pg;
mod run;
#[cfg(test)]
mod tidy;
mod tls_scan;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::pg::Database;
use crate::run::{cargo, run_cmd};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run the server with a ready-to-use development setup.
    Dev {
        /// Port to listen on (127.0.0.1).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Also start a local OpenID Connect provider (oidc-provider, on port 4400) and log in
        /// through it: open /auth/login in a browser, sign in as `local|dev-admin`.
        #[arg(long)]
        idp: bool,
    },
    /// Run every test of the workspace against real PostgreSQL.
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run migrations as the owner role (MIGRATION_DATABASE_URL, else DATABASE_URL).
    Migrate {
        #[arg(value_parser = ["up", "down", "status", "fresh"])]
        action: String,
    },
    /// Re-encrypt the development database's secret columns (see `rhesis-server reencrypt`).
    Reencrypt {
        /// Count what would change without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Benchmarks (never timed tests): `crypto` measures the field cipher against Python's
    /// cryptography.fernet and re-encryption on a table of 100,000 rows; `http` the
    /// authenticated list through the full stack against a bare handler (wrk), and memory
    /// under a flood of distinct client addresses.
    Bench {
        #[arg(value_parser = ["crypto", "http"])]
        suite: String,
    },
    /// Check dependencies with cargo-deny: advisories, licences, bans, sources.
    Audit,
    /// Render the Kubernetes manifests, scan them and the Dockerfile with checkov, and run
    /// the release binary unprivileged on read-only file systems.
    DeployCheck,
    /// Scan the server's TLS listener with testssl.sh (a certificate from a CA made for the
    /// run); fails on any finding rated HIGH or CRITICAL.
    TlsScan,
    /// The gates before the tests: fmt --check, clippy -D warnings (--locked), audit.
    Lint,
    /// lint, then test: everything CI checks.
    Ci,
    /// Print freshly generated secrets.
    GenKeys,
    /// Stop the private PostgreSQL clusters (development and tests, outage test), if they run.
    StopDb,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.task {
        Task::Dev { port, idp } => dev(&root, port, idp),
        Task::Test { args } => test(&root, &args),
        Task::Migrate { action } => migrate(&root, &action),
        Task::Reencrypt { dry_run } => reencrypt(&root, dry_run),
        Task::Bench { suite } => match suite.as_str() {
            "crypto" => bench::crypto(&root),
            "http" => bench::http(&root),
            other => bail!("unknown benchmark suite {other}"),
        },
        Task::Audit => audit::run(&root),
        Task::TlsScan => tls_scan::run(&root),
        Task::DeployCheck => deploy::check(&root),
        Task::Lint => lint(&root),
        Task::Ci => lint(&root).and_then(|()| test(&root, &[])),
        Task::GenKeys => {
            for (name, value) in gen_keys() {
                println!("{name}={value}");
            }
            Ok(())
        }
        Task::StopDb => pg::Cluster::at(&root)
            .stop()
            .and_then(|()| pg::Cluster::outage(&root).stop()),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Random secrets: a 64-byte JWT signing key, a Fernet key (url-safe base64 of 32 bytes,
/// the format of Python's `cryptography.fernet`) and a 64-byte audit chain key.
fn gen_keys() -> Vec<(&'static str, String)> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwt: [u8; 64] = rand::random();
    let fernet: [u8; 32] = rand::random();
    let audit: [u8; 64] = rand::random();
    vec![
        ("JWT_SECRET_KEY", URL_SAFE_NO_PAD.encode(jwt)),
        ("DB_ENCRYPTION_KEY", URL_SAFE.encode(fernet)),
        ("AUDIT_CHAIN_KEY", URL_SAFE_NO_PAD.encode(audit)),
    ]
}

/// The development server's secrets: generated once into the git-ignored
/// `target/dev/secrets.env`, readable by its owner only, and reused after. A secret the file
/// does not hold yet (one added since it was written) is generated and added; the others are
/// kept, so the development data stays readable.
fn dev_secrets(root: &Path) -> Result<Vec<(String, String)>> {
    let path = target_dir(root).join("dev").join("secrets.env");
    let mut pairs: Vec<(String, String)> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let missing: Vec<(String, String)> = gen_keys()
        .into_iter()
        .filter(|(name, _)| !pairs.iter().any(|(k, _)| k == name))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    if missing.is_empty() {
        return Ok(pairs);
    }
    pairs.extend(missing);
    let mut text =
        "# Development secrets, generated by `cargo xtask dev`. Never commit.\n".to_owned();
    for (k, v) in &pairs {
        text.push_str(&format!("{k}={v}\n"));
    }
    std::fs::create_dir_all(path.parent().context("no parent")?)?;
    pg::write_private(&path, &text)?;
    Ok(pairs)
}

fn server_binary(root: &Path) -> PathBuf {
    target_dir(root).join("debug").join("rhesis-server")
}

/// The development database, migrated by `binary`, and the environment that serves it with
/// fresh keys.
pub(crate) fn migrated_dev_env(root: &Path, binary: &Path) -> Result<Vec<(String, String)>> {
    let db = Database::for_dev(root)?;
    let mut env = db.server_env();
    env.extend(gen_keys().into_iter().map(|(k, v)| (k.to_owned(), v)));
    run_cmd(
        std::process::Command::new(binary)
            .args(["migrate", "up"])
            .envs(env.clone()),
    )?;
    Ok(env)
}

fn dev(root: &Path, port: u16, idp: bool) -> Result<()> {
    let db = Database::for_dev(root)?;
    cargo(root, &["build", "--package", "server"])?;
    let server = server_binary(root);
    let mut env = db.server_env();
    env.extend(dev_secrets(root)?);
    env.push(("APP_ENV".into(), "development".into()));
    // The frontend's usual development address, allowed by CORS.
    env.push(("FRONTEND_URL".into(), "http://localhost:3000".into()));
    env.push(("LOG_FORMAT".into(), "pretty".into()));
    run_cmd(
        std::process::Command::new(&server)
            .args(["migrate", "up"])
            .envs(env.clone()),
    )?;
    run_cmd(
        std::process::Command::new(&server)
            .arg("seed-dev")
            .envs(env.clone()),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    // Killed when dev ends (the guard's drop).
    let _provider = if idp {
        let (provider, provider_env) = dev_provider(root, port)?;
        env.extend(provider_env);
        Some(provider)
    } else {
        None
    };
    println!(
        "\nrhesis backend (development profile) on {base}\n\
         try first:\n  curl {base}/health/live\n  curl {base}/health/ready\n\
         database: {} (app role {})\n",
        db.describe(),
        db.app_role
    );
    let status = std::process::Command::new(&server)
        .arg("serve")
        .envs(env)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .status()
        .context("starting the server")?;
    if !status.success() {
        bail!("the server exited with {status}");
    }
    Ok(())
}

/// The port of the development identity provider.
const DEV_IDP_PORT: u16 = 4400;

/// Stops a child process when dropped.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the local identity provider for `cargo xtask dev --idp`: a client for the server on
/// `port`, the seeded administrator's account and a newcomer's. Returns it and the server's
/// login settings.
fn dev_provider(root: &Path, port: u16) -> Result<(Stopped, Vec<(String, String)>)> {
    use std::io::BufRead;
    oidc_provider(root)?;
    let secret: [u8; 24] = rand::random();
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let public = format!("http://localhost:{port}");
    let clients = serde_json::json!([{
        "client_id": "rhesis-dev",
        "client_secret": secret,
        "redirect_uris": [format!("{public}/auth/callback")],
        "post_logout_redirect_uris": [format!("{public}/auth/me"), "http://localhost:3000"],
    }]);
    let accounts = serde_json::json!([
        { "sub": "local|dev-admin", "email": "admin@example.org", "email_verified": true,
          "name": "Development Admin" },
        { "sub": "local|newcomer", "email": "newcomer@example.org", "email_verified": true,
          "name": "Newcomer" },
    ]);
    let dir = root.join("crates").join("test-support").join("oidc");
    let mut child = std::process::Command::new("node")
        .arg(dir.join("provider.mjs"))
        .current_dir(&dir)
        .env("PORT", DEV_IDP_PORT.to_string())
        .env("CLIENTS", clients.to_string())
        .env("ACCOUNTS", accounts.to_string())
        .env("KID", "dev-key")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting the identity provider (node)")?;
    let stdout = child.stdout.take().context("the provider's output")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    if !line.contains("\"ready\":true") {
        bail!("the identity provider did not start: {line}");
    }
    let issuer = format!("http://127.0.0.1:{DEV_IDP_PORT}");
    println!(
        "\nidentity provider on {issuer} (sign in as local|dev-admin or local|newcomer, any \
         password)\nlog in: {public}/auth/login?return_to={public}/auth/me"
    );
    let env = [
        ("OIDC_ISSUER_URL", issuer),
        ("AUTH0_CLIENT_ID", "rhesis-dev".to_owned()),
        ("AUTH0_CLIENT_SECRET", secret),
        ("PUBLIC_URL", public.clone()),
        (
            "CORS_ALLOWED_ORIGINS",
            format!("http://localhost:3000,{public}"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Ok((Stopped(child), env))
}

fn reencrypt(root: &Path, dry_run: bool) -> Result<()> {
    let db = Database::for_dev(root)?;
    cargo(root, &["build", "--package", "server"])?;
    let server = server_binary(root);
    run_cmd(
        std::process::Command::new(&server)
            .args(["migrate", "up"])
            .envs(db.server_env()),
    )?;
    let mut cmd = std::process::Command::new(&server);
    cmd.arg("reencrypt")
        .envs(db.server_env())
        .envs(dev_secrets(root)?);
    cmd.env("APP_ENV", "development")
        .env("LOG_FORMAT", "pretty");
    if dry_run {
        cmd.arg("--dry-run");
    }
    run_cmd(&mut cmd)
}

fn test(root: &Path, extra: &[String]) -> Result<()> {
    let db = Database::for_tests(root)?;
    db.drop_stale_test_databases()?;
    let outage = Database::outage(root)?;
    outage.drop_stale_test_databases()?;
    let outage_env = outage.outage_test_env(&pg::Cluster::outage(root))?;
    let mut args = vec!["test", "--locked"];
    // The whole workspace unless the caller names packages.
    if !extra
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package"))
    {
        args.push("--workspace");
    }
    args.extend(extra.iter().map(String::as_str));
    let python = python_env(root)?;
    oidc_provider(root)?;
    let mut cmd = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
    cmd.current_dir(root)
        .args(&args)
        .envs(db.test_env())
        .envs(outage_env)
        .env("TEST_PYTHON", python);
    run_cmd(&mut cmd)
}

/// The test identity provider's packages (`crates/test-support/oidc`), installed from its
/// lock file when missing or older than it.
pub(crate) fn oidc_provider(root: &Path) -> Result<()> {
    let dir = root.join("crates").join("test-support").join("oidc");
    let installed = dir.join("node_modules").join(".package-lock.json");
    let lock = dir.join("package-lock.json");
    let fresh = match (installed.metadata(), lock.metadata()) {
        (Ok(have), Ok(want)) => have.modified()? >= want.modified()?,
        _ => false,
    };
    if !fresh {
        println!("installing the test identity provider (npm ci)");
        run_cmd(std::process::Command::new("npm").current_dir(&dir).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]))?;
    }
    Ok(())
}

/// A Python virtual environment with the packages of `xtask/python-requirements.txt` (the
/// reference implementations the tests compare against); returns its interpreter.
pub(crate) fn python_env(root: &Path) -> Result<PathBuf> {
    let venv = target_dir(root).join("dev").join("py");
    let python = venv.join("bin").join("python");
    let requirements = root.join("xtask").join("python-requirements.txt");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).context("reading python requirements")?;
    if python.exists() && std::fs::read_to_string(&stamp).is_ok_and(|have| have == wanted) {
        return Ok(python);
    }
    eprintln!("preparing the Python reference environment in {venv:?}");
    let python3 = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    run_cmd(
        std::process::Command::new(python3)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    )?;
    run_cmd(
        std::process::Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}

fn migrate(root: &Path, action: &str) -> Result<()> {
    let url = std::env::var("MIGRATION_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .context("set MIGRATION_DATABASE_URL (the owner role) or DATABASE_URL")?;
    cargo(root, &["build", "--package", "server"])?;
    run_cmd(
        std::process::Command::new(server_binary(root))
            .args(["migrate", action])
            .env("MIGRATION_DATABASE_URL", url)
            // xtask is development tooling; APP_ENV=production asks for the production checks.
            .env(
                "APP_ENV",
                std::env::var("APP_ENV").unwrap_or_else(|_| "development".to_owned()),
            ),
    )
}

/// What clippy is told after `--`, for the workspace and for the probe alike.
const CLIPPY_FLAGS: [&str; 2] = ["-D", "warnings"];

/// The calls of the lint probe (`xtask/lint-probe`) clippy must refuse, by the paths
/// `clippy.toml` disallows.
const PROBED: [&str; 2] = ["ports::TenantScope::new", "app::Principal::operator"];

fn lint(root: &Path) -> Result<()> {
    cargo(root, &["fmt", "--all", "--", "--check"])?;
    let mut args = vec![
        "clippy",
        "--workspace",
        "--exclude",
        "lint-probe",
        "--all-targets",
        "--locked",
        "--",
    ];
    args.extend(CLIPPY_FLAGS);
    cargo(root, &args)?;
    lint_probe(root)?;
    audit::run(root)
}

/// The principal rule is on: clippy, run on the probe exactly as on the workspace (same
/// configuration, environment and flags), refuses each of its calls.
fn lint_probe(root: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut args = vec!["clippy", "-p", "lint-probe", "--locked", "--"];
    args.extend(CLIPPY_FLAGS);
    let out = std::process::Command::new(cargo)
        .current_dir(root)
        .args(&args)
        .output()
        .context("could not start cargo clippy on the lint probe")?;
    let report = String::from_utf8_lossy(&out.stderr);
    let missed: Vec<_> = PROBED
        .iter()
        .filter(|path| !report.contains(&format!("use of a disallowed method `{path}`")))
        .collect();
    if out.status.success() || !missed.is_empty() {
        bail!(
            "the principal rule is switched off: clippy did not refuse {missed:?} in \
             xtask/lint-probe (it exited {}); clippy said:\n{report}",
            out.status
        );
    }
    println!("lint probe: clippy refuses every call the principal rule forbids");
    Ok(())
}
