//! `cargo xtask bench`: throughput figures, measured here and printed, never asserted (the
//! machines are shared and noisy; targets live in benchmarks, not in timed tests).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::pg::Database;
use crate::run::{cargo, output};

/// `op -> ops per second` from the JSON lines a benchmark program prints.
fn parse(text: &str) -> Result<BTreeMap<String, f64>> {
    let mut figures = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value = serde_json::from_str(line).context("benchmark output")?;
        let op = value["op"].as_str().context("op")?.to_owned();
        let rate = value["ops_per_sec"].as_f64().context("ops_per_sec")?;
        figures.insert(op, rate);
    }
    Ok(figures)
}

/// Builds each `(package, example)` with optimizations; the folder of the programs.
fn release_examples(root: &Path, examples: &[(&str, &str)]) -> Result<std::path::PathBuf> {
    for (package, example) in examples {
        cargo(
            root,
            &[
                "build",
                "--release",
                "--package",
                package,
                "--example",
                example,
            ],
        )?;
    }
    Ok(crate::target_dir(root).join("release").join("examples"))
}

pub(crate) fn crypto(root: &Path) -> Result<()> {
    const N: &str = "100000";
    let examples = release_examples(
        root,
        &[("crypto", "fernet_bench"), ("server", "reencrypt_bench")],
    )?;

    let rust = parse(&output(Command::new(examples.join("fernet_bench")).arg(N))?)?;
    let python_bin = crate::python_env(root)?;
    let script = root.join("xtask").join("bench").join("fernet_bench.py");
    let python = parse(&output(Command::new(python_bin).arg(script).arg(N))?)?;

    println!("\nField cipher, 40-byte secret, {N} operations each (single thread)");
    println!(
        "{:<32} {:>14} {:>14} {:>8}",
        "operation", "Rust ops/s", "Python ops/s", "ratio"
    );
    for (op, rate) in &rust {
        match python.get(op) {
            Some(py) => println!("{op:<32} {rate:>14.0} {py:>14.0} {:>7.1}x", rate / py),
            None => println!("{op:<32} {rate:>14.0} {:>14} {:>8}", "-", "-"),
        }
    }

    let db = Database::for_tests(root)?;
    let mut cmd = Command::new(examples.join("reencrypt_bench"));
    cmd.envs(db.test_env());
    let rows = parse(&output(&mut cmd)?)?;
    println!("\nRe-encryption through PostgreSQL (batches of 500, application role, RLS on)");
    for (op, rate) in &rows {
        println!("{op:<32} {rate:>14.0} rows/s");
    }
    println!(
        "(Python's MultiFernet.rotate above is the in-memory counterpart; it has no database \
         re-encryption to compare with.)"
    );
    Ok(())
}

/// Kills the benchmark server however the run ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// wrk, installed from Debian's packages when missing.
fn wrk() -> Result<&'static str> {
    let found = Command::new("wrk").arg("--version").output().is_ok();
    if !found {
        println!("wrk is missing; installing it from Debian's packages");
        crate::run::run_cmd(Command::new("apt-get").args(["install", "-y", "-q", "wrk"]))?;
    }
    Ok("wrk")
}

/// One wrk run's figures.
struct Load {
    requests_per_sec: f64,
    p99_ms: f64,
    requests: u64,
}

/// A wrk latency figure (`950.00us`, `1.23ms`, `2.01s`) in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1000.0),
        "ms" => Some(number),
        "s" => Some(number * 1000.0),
        "m" => Some(number * 60_000.0),
        _ => None,
    }
}

/// Runs wrk against `url` for `seconds` with the bearer `token` (and `script`, if any); the
/// run fails when any response was not 2xx.
fn load(url: &str, token: &str, seconds: u32, script: Option<&Path>) -> Result<Load> {
    let mut cmd = Command::new(wrk()?);
    cmd.args(["-t2", "-c16", &format!("-d{seconds}s"), "--latency"])
        .args(["-H", &format!("Authorization: Bearer {token}")]);
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let text = output(cmd.arg(url))?;
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        anyhow::bail!("wrk saw failed requests against {url}:\n{text}");
    }
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .with_context(|| format!("no {prefix} in wrk's output:\n{text}"))
    };
    Ok(Load {
        requests_per_sec: field("Requests/sec:")?.parse()?,
        p99_ms: millis(&field("99%")?).context("wrk's 99th percentile")?,
        requests: text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next())
            .context("wrk's request count")?
            .parse()?,
    })
}

/// The resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("VmRSS")?
        .parse()?;
    Ok(kib / 1024.0)
}

/// A request per random client address, through the trusted proxy's `X-Forwarded-For`.
const FLOOD_SCRIPT: &str = r#"math.randomseed(os.time())
request = function()
  local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." ..
             math.random(0, 255) .. "." .. math.random(1, 254)
  wrk.headers["X-Forwarded-For"] = ip
  return wrk.format(nil)
end
"#;

pub(crate) fn http(root: &Path) -> Result<()> {
    wrk()?;
    let examples = release_examples(root, &[("server", "http_bench")])?;
    let db = Database::for_tests(root)?;
    let budget = "6000000";
    let mut cmd = Command::new(examples.join("http_bench"));
    cmd.envs(db.test_env())
        .envs(crate::gen_keys())
        .env("APP_ENV", "test")
        .env("RUST_LOG", "info")
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .env("RATE_LIMIT_PER_IP_PER_MINUTE", budget)
        .env("RATE_LIMIT_ANONYMOUS_PER_MINUTE", budget)
        .env("RATE_LIMIT_AUTHENTICATED_PER_MINUTE", budget)
        .env("RATE_LIMIT_AUTH_PER_MINUTE", budget)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = Child(cmd.spawn().context("starting the benchmark servers")?);
    let stdout = child.0.stdout.take().context("the servers' output")?;
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first)?;
    let servers: serde_json::Value =
        serde_json::from_str(&first).context("the servers' addresses")?;
    let text = |key: &str| {
        servers[key]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("{key} in {first}"))
    };
    let (full, bare, token) = (text("full")?, text("bare")?, text("token")?);

    // Warm both up, then measure each in turn.
    load(&bare, &token, 3, None)?;
    load(&full, &token, 3, None)?;
    let bare_load = load(&bare, &token, 15, None)?;
    let full_load = load(&full, &token, 15, None)?;
    println!(
        "\nGET /api/v1/projects (20 projects, bearer JWT), wrk -t2 -c16 -d15s, server and \
         PostgreSQL on this machine"
    );
    println!("{:<44} {:>12} {:>10}", "stack", "requests/s", "p99 ms");
    for (name, l) in [
        ("bare handler, same query, no security layer", &bare_load),
        ("full middleware stack", &full_load),
    ] {
        println!("{name:<44} {:>12.0} {:>10.2}", l.requests_per_sec, l.p99_ms);
    }
    println!(
        "full / bare: throughput {:.2}, p99 {:.2}",
        full_load.requests_per_sec / bare_load.requests_per_sec,
        full_load.p99_ms / bare_load.p99_ms
    );

    // A flood of distinct client addresses: the limiters' memory must come back once it is
    // over, and a second flood must not add to the first.
    let script = crate::target_dir(root).join("bench").join("flood.lua");
    std::fs::create_dir_all(script.parent().context("bench folder")?)?;
    std::fs::write(&script, FLOOD_SCRIPT)?;
    let pid = child.0.id();
    let before = rss_mib(pid)?;
    let mut rows = Vec::new();
    for round in 1..=2 {
        let flood = load(&full, &token, 10, Some(&script))?;
        let peak = rss_mib(pid)?;
        // The limiters forget idle keys every 10 s.
        std::thread::sleep(std::time::Duration::from_secs(25));
        rows.push((round, flood.requests, peak, rss_mib(pid)?));
    }
    println!("\nFlood of distinct client addresses (random X-Forwarded-For via a trusted proxy)");
    println!("resident memory before: {before:.1} MiB");
    for (round, requests, peak, after) in rows {
        println!(
            "flood {round}: {requests} requests (about as many addresses), {peak:.1} MiB at its \
             end, {after:.1} MiB 25 s later"
        );
    }
    Ok(())
}
