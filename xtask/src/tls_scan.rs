//! `cargo xtask tls-scan`: the server's own TLS listener, with a certificate from a CA made for
//! the run, scanned by testssl.sh (Debian's package, installed when missing). Fails on any
//! finding rated HIGH or CRITICAL and prints every finding rated MEDIUM or above.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run::{cargo, run_cmd};

/// testssl.sh, installed from Debian's packages when missing.
fn testssl() -> Result<&'static str> {
    if Command::new("testssl").arg("--version").output().is_err() {
        println!("testssl.sh is missing; installing it from Debian's packages");
        let install =
            || run_cmd(Command::new("apt-get").args(["install", "-y", "-q", "testssl.sh"]));
        if install().is_err() {
            // A fresh machine's package lists may be empty or old.
            run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
            install()?;
        }
    }
    Ok("testssl")
}

/// A CA and a certificate for `localhost` signed by it (P-256), in `dir`: what a valid
/// certificate looks like (a year's validity, a CRL location), so that the scan judges the
/// server's TLS and not the test certificate.
fn certificates(dir: &Path) -> Result<()> {
    const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    let openssl = |args: &str| {
        run_cmd(
            Command::new("openssl")
                .current_dir(dir)
                .args(args.split_whitespace()),
        )
    };
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         crlDistributionPoints=URI:http://localhost/scan-ca.crl\n",
    )?;
    openssl(&format!(
        "req -x509 {EC} -keyout ca.key -out ca.pem -days 3650 -subj /CN=rhesis-scan-ca"
    ))?;
    openssl(&format!(
        "req {EC} -keyout key.pem -out leaf.csr -subj /CN=localhost"
    ))?;
    openssl(
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem \
         -days 365 -sha256 -extfile leaf.ext",
    )
}

/// Stops the server when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(root: &Path) -> Result<()> {
    let testssl = testssl()?;
    let dir = crate::target_dir(root).join("tls-scan");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    certificates(&dir)?;

    cargo(root, &["build", "--package", "server"])?;
    let server = crate::server_binary(root);
    let env = crate::migrated_dev_env(root, &server)?;
    let port = crate::pg::free_port()?;
    let _running = Server(
        Command::new(&server)
            .arg("serve")
            .envs(env)
            .env("APP_ENV", "test")
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("TLS_CERT_FILE", dir.join("cert.pem"))
            .env("TLS_KEY_FILE", dir.join("key.pem"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the server")?,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            bail!("the server did not listen on port {port}");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let report = dir.join("testssl.json");
    // testssl's exit status counts findings; the report is what is judged.
    let _ = Command::new(testssl)
        .current_dir(&dir)
        .args(["--quiet", "--warnings", "off", "--color", "0", "--add-ca"])
        .arg(dir.join("ca.pem"))
        .arg("--jsonfile")
        .arg(&report)
        .arg(format!("localhost:{port}"))
        .status()
        .context("running testssl.sh")?;
    let findings: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&report).context("reading testssl.sh's report")?,
    )
    .context("testssl.sh's report is not JSON")?;
    let findings = findings
        .as_array()
        .context("testssl.sh's report is no list")?;
    let rated = |levels: &[&str]| -> Vec<String> {
        findings
            .iter()
            .filter(|f| levels.contains(&f["severity"].as_str().unwrap_or_default()))
            .map(|f| format!("{} {}: {}", f["severity"], f["id"], f["finding"]))
            .collect()
    };
    println!("\ntestssl.sh: {} findings", findings.len());
    for line in rated(&["MEDIUM", "HIGH", "CRITICAL"]) {
        println!("  {line}");
    }
    let severe = rated(&["HIGH", "CRITICAL"]);
    if !severe.is_empty() {
        bail!(
            "testssl.sh rates {} finding(s) HIGH or CRITICAL",
            severe.len()
        );
    }
    println!("no finding rated HIGH or CRITICAL");
    Ok(())
}
