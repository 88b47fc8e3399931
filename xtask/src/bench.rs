//! `cargo xtask bench`: throughput figures, measured here and printed, never asserted (the
//! machines are shared and noisy; targets live in benchmarks, not in timed tests).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::pg::Database;
use crate::run::{cargo, output, run_cmd};

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

// --- bench http -------------------------------------------------------------------------
//
// `GET /api/v1/projects` (20 projects) through the full application against a bare handler
// running the same query, for each credential kind (access token, API token, session
// cookie), at 16 and at 256 connections; then the limiters' memory under a flood of client
// addresses. The bare handler and the full application are separate processes over one
// database, so that each one's CPU time can be read from `/proc`. A wrk run's timeouts,
// socket errors and non-2xx answers are figures of the report, never a reason to stop; only
// output wrk did not write, or a server that died, stops the run (after printing what was
// measured).
//
// Durations come from the environment: `BENCH_HTTP_SECONDS` (each measured run, default
// 8), `BENCH_HTTP_WARMUP_SECONDS` (before each, default 2), `BENCH_HTTP_TIMEOUT_SECONDS`
// (wrk's `--timeout`, default 5), `BENCH_HTTP_FLOOD_SECONDS` (each flood, default 10);
// `BENCH_HTTP_LOG_DIR` keeps the servers' logs there (default: discarded).

/// The connection counts measured, and the targets at each.
const CONNECTIONS: [u32; 2] = [16, 256];
/// wrk's threads (the machine has 2 cores).
const WRK_THREADS: u32 = 2;
/// Targets of the issue: at 16 connections full / bare throughput and p99; at 256, p99.
const TARGET_THROUGHPUT_16: f64 = 0.90;
const TARGET_P99_16: f64 = 1.15;
const TARGET_P99_256: f64 = 1.5;
/// How long after a flood the memory is read again: the limiters forget idle clients every
/// 10 s (`server`'s `FORGET_IDLE_EVERY`).
const AFTER_FLOOD: Duration = Duration::from_secs(15);
/// The highest budget the limiters take, per minute (`api_http::MAX_PER_MINUTE`).
const BUDGET: &str = "6000000";
/// How long a server may take to start and print its address.
const STARTUP: Duration = Duration::from_secs(120);

/// Durations and where logs go, from the environment.
#[derive(Debug)]
struct HttpSettings {
    seconds: u32,
    warmup: u32,
    timeout: u32,
    flood: u32,
    log_dir: Option<PathBuf>,
}

/// A whole number of seconds from `name`, at least 1, or `default`.
fn env_seconds(name: &str, default: u32) -> Result<u32> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => bail!("{name} must be a whole number of seconds, at least 1 (got {text:?})"),
        },
    }
}

impl HttpSettings {
    fn from_env() -> Result<Self> {
        Ok(Self {
            seconds: env_seconds("BENCH_HTTP_SECONDS", 8)?,
            warmup: env_seconds("BENCH_HTTP_WARMUP_SECONDS", 2)?,
            timeout: env_seconds("BENCH_HTTP_TIMEOUT_SECONDS", 5)?,
            flood: env_seconds("BENCH_HTTP_FLOOD_SECONDS", 10)?,
            log_dir: std::env::var_os("BENCH_HTTP_LOG_DIR").map(PathBuf::from),
        })
    }
}

/// wrk, installed from Debian's packages when missing (the package lists refreshed once if
/// the first attempt fails).
fn ensure_wrk() -> Result<()> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    println!("wrk is missing; installing it from Debian's packages");
    let install = || run_cmd(Command::new("apt-get").args(["install", "-y", "-q", "wrk"]));
    if install().is_err() {
        run_cmd(Command::new("apt-get").args(["update", "-q"]))?;
        install()?;
    }
    Ok(())
}

/// One wrk run's figures. Failed requests are figures too.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Load {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Responses wrk read in the run.
    requests: u64,
    /// Responses with a status of 400 or more (wrk's "Non-2xx or 3xx responses").
    non_2xx: u64,
    connect_errors: u64,
    read_errors: u64,
    write_errors: u64,
    timeouts: u64,
}

impl Load {
    fn socket_errors(&self) -> u64 {
        self.connect_errors + self.read_errors + self.write_errors
    }

    fn has_errors(&self) -> bool {
        self.non_2xx + self.socket_errors() + self.timeouts > 0
    }

    /// The errors of the run, in words; empty when there were none.
    fn errors(&self) -> String {
        let mut parts = Vec::new();
        if self.non_2xx > 0 {
            parts.push(format!("{} non-2xx", self.non_2xx));
        }
        if self.timeouts > 0 {
            parts.push(format!("{} timeouts", self.timeouts));
        }
        if self.socket_errors() > 0 {
            parts.push(format!(
                "socket errors: connect {}, read {}, write {}",
                self.connect_errors, self.read_errors, self.write_errors
            ));
        }
        parts.join(", ")
    }
}

/// A wrk latency figure (`950.00us`, `1.23ms`, `2.01s`, `1.50m`) in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    match unit {
        "us" => Some(number / 1000.0),
        "ms" => Some(number),
        "s" => Some(number * 1000.0),
        "m" => Some(number * 60_000.0),
        "h" => Some(number * 3_600_000.0),
        _ => None,
    }
}

/// The figures of wrk's `--latency` output; `Err` names what is missing.
fn parse_wrk(text: &str) -> Result<Load> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let after = |prefix: &str| lines.iter().find_map(|l| l.strip_prefix(prefix));
    let first_word = |prefix: &str| {
        after(prefix)
            .and_then(|rest| rest.split_whitespace().next())
            .with_context(|| format!("no {prefix:?} line"))
    };
    let percentile = |prefix: &str| -> Result<f64> {
        let text = first_word(prefix)?;
        millis(text).with_context(|| format!("the {prefix} latency {text:?}"))
    };
    let requests_per_sec = first_word("Requests/sec:")?;
    let requests = lines
        .iter()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .context("no request count")?;
    let mut load = Load {
        requests_per_sec: requests_per_sec
            .parse()
            .with_context(|| format!("requests/s {requests_per_sec:?}"))?,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
        requests: requests
            .parse()
            .with_context(|| format!("request count {requests:?}"))?,
        ..Load::default()
    };
    if let Some(rest) = after("Non-2xx or 3xx responses:") {
        load.non_2xx = rest.trim().parse().context("the non-2xx count")?;
    }
    // "Socket errors: connect 0, read 2, write 0, timeout 12"
    if let Some(rest) = after("Socket errors:") {
        for part in rest.split(',') {
            let mut words = part.split_whitespace();
            let (Some(kind), Some(count)) = (words.next(), words.next()) else {
                bail!("the socket errors {rest:?}");
            };
            let count: u64 = count
                .parse()
                .with_context(|| format!("the socket errors {rest:?}"))?;
            match kind {
                "connect" => load.connect_errors = count,
                "read" => load.read_errors = count,
                "write" => load.write_errors = count,
                "timeout" => load.timeouts = count,
                _ => bail!("the socket errors {rest:?}"),
            }
        }
    }
    Ok(load)
}

/// One run of wrk against `url` with the request header `header` (and `script`, if any).
fn wrk(
    url: &str,
    header: &str,
    connections: u32,
    seconds: u32,
    timeout: u32,
    script: Option<&Path>,
) -> Result<Load> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        format!("-t{WRK_THREADS}"),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        format!("--timeout={timeout}s"),
        "--latency".to_owned(),
    ])
    .args(["-H", header]);
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    let out = cmd.arg(url).output().context("could not start wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text).with_context(|| {
        format!(
            "wrk's output against {url} could not be read ({}):\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// user + system CPU time in clock ticks from the text of `/proc/<pid>/stat`.
fn stat_ticks(stat: &str) -> Option<u64> {
    // The name in parentheses may hold spaces; the fields after it start with the state
    // (field 3): utime and stime are fields 14 and 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The CPU time process `pid` (all its threads) used so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    stat_ticks(&stat).with_context(|| format!("the CPU times in {path}"))
}

/// Clock ticks per second of `/proc`'s CPU times (`getconf CLK_TCK`; 100 if it fails).
fn clock_ticks() -> (f64, &'static str) {
    match output(Command::new("getconf").arg("CLK_TCK")).map(|t| t.trim().parse::<u32>()) {
        Ok(Ok(hz)) if hz > 0 => (f64::from(hz), "getconf CLK_TCK"),
        _ => (100.0, "getconf CLK_TCK failed: assumed"),
    }
}

/// Whether a command line is that of a PostgreSQL backend serving `database`: its title is
/// `postgres: <role> <database> <client> <activity>`.
fn is_backend_of(cmdline: &str, database: &str) -> bool {
    let words: Vec<&str> = cmdline
        .split(|c: char| c == '\0' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    words.first() == Some(&"postgres:") && words.get(2) == Some(&database)
}

/// The CPU ticks of every PostgreSQL backend serving `database` now, by process id.
fn backends(database: &str) -> BTreeMap<u32, u64> {
    let mut ticks = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !is_backend_of(&String::from_utf8_lossy(&cmdline), database) {
            continue;
        }
        if let Some(t) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .as_deref()
            .and_then(stat_ticks)
        {
            ticks.insert(pid, t);
        }
    }
    ticks
}

/// The backends' ticks between two readings (a backend started in between counts whole;
/// one that ended in between is lost).
fn backend_ticks(before: &BTreeMap<u32, u64>, after: &BTreeMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
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

/// The status and the start of the body of one plain `GET url` with `header`.
fn get_status(url: &str, header: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(authority)
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {authority}\r\n{header}\r\nConnection: close\r\n\r\n"
    )?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status in the answer of {url}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .chars()
        .take(300)
        .collect();
    Ok((status, body))
}

/// One server of the benchmark, killed however the run ends.
struct Server {
    name: &'static str,
    child: std::process::Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `program` with `args` and waits for the line with its URL.
    fn start(
        name: &'static str,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
        log_dir: Option<&Path>,
    ) -> Result<Self> {
        let stderr = match log_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let path = dir.join(format!("{name}.log"));
                std::process::Stdio::from(
                    std::fs::File::create(&path).with_context(|| format!("creating {path:?}"))?,
                )
            }
            None => std::process::Stdio::null(),
        };
        let mut child = Command::new(program)
            .args(args)
            .envs(env.to_owned())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting the {name} server"))?;
        let stdout = child.stdout.take().context("the server's output")?;
        // Kills the child if its line never comes.
        let mut server = Self {
            name,
            child,
            url: String::new(),
        };
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            let _ = send.send(read.map(|_| line));
        });
        let line = match receive.recv_timeout(STARTUP) {
            Ok(Ok(line)) => line,
            Ok(Err(err)) => {
                return Err(
                    anyhow::Error::new(err).context(format!("reading the {name} server's URL"))
                );
            }
            Err(_) => bail!(
                "the {name} server printed no URL within {} s",
                STARTUP.as_secs()
            ),
        };
        if line.trim().is_empty() {
            // Its output closed: it is exiting.
            std::thread::sleep(Duration::from_millis(500));
            bail!(
                "the {name} server did not start ({}); set BENCH_HTTP_LOG_DIR to keep its log",
                server.exit_status()
            );
        }
        let announced: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("the {name} server's first line {line:?}"))?;
        server.url = announced["url"]
            .as_str()
            .with_context(|| format!("no url in the {name} server's line {line:?}"))?
            .to_owned();
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exit_status(&mut self) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => format!("exited: {status}"),
            Ok(None) => "still running".to_owned(),
            Err(err) => format!("unknown: {err}"),
        }
    }

    /// Fails when the server is no longer running.
    fn alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "the {} server died ({status}); set BENCH_HTTP_LOG_DIR to keep its log",
                self.name
            ),
            Err(err) => Err(err).context(format!("checking the {} server", self.name)),
        }
    }
}

/// A credential the load presents, as a request header.
struct Credential {
    name: &'static str,
    header: String,
}

/// One measured run: wrk's figures and the CPU the server and its database backends spent.
#[derive(Debug, Clone, Copy)]
struct Measured {
    load: Load,
    /// The server process's user + system ticks during the run.
    cpu_ticks: u64,
    /// The ticks of the benchmark database's PostgreSQL backends during the run (every
    /// backend, the idle server's included: its background tasks only).
    pg_ticks: u64,
}

/// Both runs of one path at one connection count, or why it was not measured.
struct Row {
    path: &'static str,
    pair: std::result::Result<(Measured, Measured), String>,
}

/// What the measurements share.
struct Bench {
    settings: HttpSettings,
    /// Clock ticks per second of `/proc`'s CPU times.
    hz: f64,
    database: String,
    bare: Server,
    full: Server,
}

impl Bench {
    /// A warm-up, then a measured run of `server` (`full` or else bare).
    fn run(&mut self, full: bool, credential: &Credential, connections: u32) -> Result<Measured> {
        let settings = &self.settings;
        let server = if full { &mut self.full } else { &mut self.bare };
        server.alive()?;
        wrk(
            &server.url,
            &credential.header,
            connections,
            settings.warmup,
            settings.timeout,
            None,
        )?;
        server.alive()?;
        let pg_before = backends(&self.database);
        let cpu_before = cpu_ticks(server.pid())?;
        let load = wrk(
            &server.url,
            &credential.header,
            connections,
            settings.seconds,
            settings.timeout,
            None,
        )?;
        server.alive()?;
        let cpu_ticks = cpu_ticks(server.pid())?.saturating_sub(cpu_before);
        let pg_ticks = backend_ticks(&pg_before, &backends(&self.database));
        eprintln!(
            "  {connections:>3} connections, {:<14} {:<4}: {:>8.0} requests/s, p99 {:.2} ms{}",
            credential.name,
            server.name,
            load.requests_per_sec,
            load.p99_ms,
            if load.has_errors() {
                format!(" ({})", load.errors())
            } else {
                String::new()
            }
        );
        Ok(Measured {
            load,
            cpu_ticks,
            pg_ticks,
        })
    }

    /// The bare and the full run of a path, back to back (`full_first` alternates the order
    /// so that drifting machine noise does not always favour one).
    fn pair(
        &mut self,
        credential: &Credential,
        connections: u32,
        full_first: bool,
    ) -> Result<(Measured, Measured)> {
        if full_first {
            let full = self.run(true, credential, connections)?;
            Ok((self.run(false, credential, connections)?, full))
        } else {
            let bare = self.run(false, credential, connections)?;
            Ok((bare, self.run(true, credential, connections)?))
        }
    }

    /// CPU milliseconds per request of `ticks` over a run.
    fn per_request(&self, ticks: u64, load: &Load) -> f64 {
        if load.requests == 0 {
            return f64::NAN;
        }
        // Tick counts and request counts stay far below 2^52: exact as f64.
        let (ticks, requests) = (ticks as f64, load.requests as f64);
        ticks * 1000.0 / self.hz / requests
    }
}

/// `a / b`, NaN when it has no meaning.
fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        a / b
    } else {
        f64::NAN
    }
}

/// A figure with `decimals`, right-aligned in `width`; `-` when it has no value.
fn figure(value: f64, width: usize, decimals: usize) -> String {
    if value.is_finite() {
        format!("{value:>width$.decimals$}")
    } else {
        format!("{:>width$}", "-")
    }
}

/// The table of one connection count.
fn print_table(bench: &Bench, connections: u32, rows: &[Row]) {
    let s = &bench.settings;
    println!(
        "\n{connections} connections: wrk -t{WRK_THREADS} -c{connections} -d{}s --timeout={}s \
         --latency, each run after {} s of warm-up",
        s.seconds, s.timeout, s.warmup
    );
    println!(
        "{:<16} {:^24} | {:^22} | {:^22} | {:^15} | {:^15} |",
        "", "requests/s", "p50 ms", "p99 ms", "CPU ms/request", "PG ms/request"
    );
    println!(
        "{:<16} {:>8} {:>8} {:>6} | {:>7} {:>7} {:>6} | {:>7} {:>7} {:>6} | {:>7} {:>7} | \
         {:>7} {:>7} | errors",
        "path",
        "bare",
        "full",
        "ratio",
        "bare",
        "full",
        "ratio",
        "bare",
        "full",
        "ratio",
        "bare",
        "full",
        "bare",
        "full"
    );
    let mut marked = false;
    for row in rows {
        let (bare, full) = match &row.pair {
            Ok(pair) => pair,
            Err(why) => {
                println!("{:<16} not measured: {why}", row.path);
                continue;
            }
        };
        let (b, f) = (&bare.load, &full.load);
        let errors = match (b.has_errors(), f.has_errors()) {
            (false, false) => "none".to_owned(),
            (true, false) => format!("bare: {}", b.errors()),
            (false, true) => format!("full: {}", f.errors()),
            (true, true) => format!("bare: {}; full: {}", b.errors(), f.errors()),
        };
        let mark = if b.has_errors() || f.has_errors() {
            marked = true;
            "!"
        } else {
            ""
        };
        println!(
            "{:<16} {} {} {} | {} {} {} | {} {} {} | {} {} | {} {} | {errors}",
            format!("{mark}{}", row.path),
            figure(b.requests_per_sec, 8, 0),
            figure(f.requests_per_sec, 8, 0),
            figure(ratio(f.requests_per_sec, b.requests_per_sec), 6, 2),
            figure(b.p50_ms, 7, 2),
            figure(f.p50_ms, 7, 2),
            figure(ratio(f.p50_ms, b.p50_ms), 6, 2),
            figure(b.p99_ms, 7, 2),
            figure(f.p99_ms, 7, 2),
            figure(ratio(f.p99_ms, b.p99_ms), 6, 2),
            figure(bench.per_request(bare.cpu_ticks, b), 7, 3),
            figure(bench.per_request(full.cpu_ticks, f), 7, 3),
            figure(bench.per_request(bare.pg_ticks, b), 7, 3),
            figure(bench.per_request(full.pg_ticks, f), 7, 3),
        );
    }
    if marked {
        println!(
            "! a run of this row had errors (wrk's counts; non-2xx is every status of 400 or \
             more): its figures include them"
        );
    }
}

/// Whether each row meets the targets at its connection count, with the numbers.
fn print_targets(tables: &[(u32, Vec<Row>)]) {
    println!("\nTargets (benchmark figures, not tests; never a failure of this command):");
    for (connections, rows) in tables {
        let rule = if *connections <= 16 {
            format!(
                "full / bare throughput >= {TARGET_THROUGHPUT_16:.2} and p99 <= \
                 {TARGET_P99_16:.2}x"
            )
        } else {
            format!("p99 <= {TARGET_P99_256:.1}x bare")
        };
        println!("  {connections} connections, {rule}:");
        for row in rows {
            let Ok((bare, full)) = &row.pair else {
                println!("    {:<16} not measured", row.path);
                continue;
            };
            let throughput = ratio(full.load.requests_per_sec, bare.load.requests_per_sec);
            let p99 = ratio(full.load.p99_ms, bare.load.p99_ms);
            let met = if *connections <= 16 {
                throughput >= TARGET_THROUGHPUT_16 && p99 <= TARGET_P99_16
            } else {
                p99 <= TARGET_P99_256
            };
            let errors = bare.load.has_errors() || full.load.has_errors();
            let verdict = match (met, errors) {
                (_, true) => "not met (its runs had errors)",
                (true, false) => "met",
                (false, false) => "not met",
            };
            println!(
                "    {:<16} {verdict}: throughput {}, p99 {}x",
                row.path,
                figure(throughput, 0, 2),
                figure(p99, 0, 2)
            );
        }
    }
}

/// A request per random client address, through the trusted proxy's `X-Forwarded-For`;
/// each wrk thread draws its own sequence.
const FLOOD_SCRIPT: &str = r#"local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(os.time() * 1000 + id)
end
request = function()
  local ip = math.random(1, 223) .. "." .. math.random(0, 255) .. "." ..
             math.random(0, 255) .. "." .. math.random(1, 254)
  wrk.headers["X-Forwarded-For"] = ip
  return wrk.format(nil)
end
"#;

/// A flood of distinct client addresses against the full application: the limiters' memory
/// must come back once it is over, and a second flood must not add to the first. Each round
/// is printed as it ends.
fn flood(root: &Path, bench: &mut Bench, credential: &Credential) -> Result<()> {
    let script = crate::target_dir(root).join("bench").join("flood.lua");
    std::fs::create_dir_all(script.parent().context("bench folder")?)?;
    std::fs::write(&script, FLOOD_SCRIPT)?;
    let seconds = bench.settings.flood;
    println!(
        "\nFlood of distinct client addresses (random X-Forwarded-For via a trusted proxy; \
         {}, wrk -c16 -d{seconds}s), full application's memory",
        credential.name
    );
    bench.full.alive()?;
    let pid = bench.full.pid();
    println!("resident memory before: {:.1} MiB", rss_mib(pid)?);
    for round in 1..=2 {
        bench.full.alive()?;
        let load = wrk(
            &bench.full.url,
            &credential.header,
            16,
            seconds,
            bench.settings.timeout,
            Some(&script),
        )?;
        bench.full.alive()?;
        let peak = rss_mib(pid)?;
        std::thread::sleep(AFTER_FLOOD);
        bench.full.alive()?;
        let after = rss_mib(pid)?;
        let errors = match load.errors() {
            e if e.is_empty() => String::new(),
            e => format!(" ({e})"),
        };
        println!(
            "flood {round}: {} requests (about as many addresses){errors}, {peak:.1} MiB at its \
             end, {after:.1} MiB {} s later",
            load.requests,
            AFTER_FLOOD.as_secs()
        );
    }
    Ok(())
}

/// A text field of the setup's line.
fn field(value: &serde_json::Value, key: &str) -> Result<String> {
    match &value[key] {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Null => bail!("no {key} in the setup's output"),
        other => Ok(other.to_string()),
    }
}

pub(crate) fn http(root: &Path) -> Result<()> {
    let settings = HttpSettings::from_env()?;
    ensure_wrk()?;
    let examples = release_examples(root, &[("server", "http_bench")])?;
    let program = examples.join("http_bench");
    let db = Database::for_tests(root)?;

    // Every budget at its highest, so that no limit bites (the session cookie's requests
    // carry no Authorization header: they count as anonymous per address as well).
    let budget = BUDGET;
    let mut env: Vec<(String, String)> = crate::gen_keys()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (k, v) in [
        ("APP_ENV", "test"),
        ("RUST_LOG", "info"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("RATE_LIMIT_PER_IP_PER_MINUTE", budget),
        ("RATE_LIMIT_ANONYMOUS_PER_MINUTE", budget),
        ("RATE_LIMIT_AUTHENTICATED_PER_MINUTE", budget),
        ("RATE_LIMIT_AUTH_PER_MINUTE", budget),
        // The access token outlives any configured run.
        ("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", "1440"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }

    let mut setup_cmd = Command::new(&program);
    setup_cmd.arg("setup").envs(db.test_env()).envs(env.clone());
    let setup = output(&mut setup_cmd).context("setting up the benchmark's database")?;
    let setup: serde_json::Value = setup
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("the setup printed no line")
        .and_then(|l| serde_json::from_str(l).context("the setup's line"))?;
    env.push(("DATABASE_URL".to_owned(), field(&setup, "database_url")?));
    let (user, organization) = (field(&setup, "user")?, field(&setup, "organization")?);
    let credentials = [
        Credential {
            name: "JWT",
            header: format!("Authorization: Bearer {}", field(&setup, "jwt")?),
        },
        Credential {
            name: "API token",
            header: format!("Authorization: Bearer {}", field(&setup, "api_token")?),
        },
        Credential {
            name: "session cookie",
            header: format!("Cookie: {}", field(&setup, "session_cookie")?),
        },
    ];

    let log_dir = settings.log_dir.clone();
    let bare = Server::start(
        "bare",
        &program,
        &["bare", "--user", &user, "--organization", &organization],
        &env,
        log_dir.as_deref(),
    )?;
    let full = Server::start("full", &program, &["full"], &env, log_dir.as_deref())?;
    let (hz, hz_source) = clock_ticks();
    let mut bench = Bench {
        settings,
        hz,
        database: field(&setup, "database")?,
        bare,
        full,
    };

    // Each credential once, by a plain request, before any load.
    let mut refused = Vec::new();
    for credential in &credentials {
        for server in [&bench.bare, &bench.full] {
            match get_status(&server.url, &credential.header) {
                Ok((200, _)) => {}
                Ok((status, body)) => refused.push((
                    credential.name,
                    format!(
                        "the {} server answered {status} to the {} path (expected 200): {body}",
                        server.name, credential.name
                    ),
                )),
                Err(err) => refused.push((
                    credential.name,
                    format!(
                        "the {} path's request to the {} server failed: {err:#}",
                        credential.name, server.name
                    ),
                )),
            }
        }
    }
    for (_, why) in &refused {
        eprintln!("error: {why}");
    }

    println!(
        "\nGET /api/v1/projects (20 projects): the full application against a bare handler \
         with the same query and no security layer, each its own process over one database; \
         server, PostgreSQL and wrk share this machine's {} cores. Each row's two runs ran \
         back to back (order alternating). CPU ms/request: the server process's user+system \
         time from /proc ({hz_source} = {hz}); PG ms/request: the benchmark database's \
         PostgreSQL backends in the same window.",
        std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
    );
    let mut tables: Vec<(u32, Vec<Row>)> = Vec::new();
    let mut failure = None;
    'matrix: for (c, connections) in CONNECTIONS.into_iter().enumerate() {
        tables.push((connections, Vec::new()));
        for (p, credential) in credentials.iter().enumerate() {
            let pair = match refused.iter().find(|(name, _)| *name == credential.name) {
                Some(_) => Err("its credential was refused (see the error above)".to_owned()),
                None => match bench.pair(credential, connections, (c + p) % 2 == 1) {
                    Ok(pair) => Ok(pair),
                    Err(err) => {
                        failure = Some(err);
                        break 'matrix;
                    }
                },
            };
            if let Some((_, rows)) = tables.last_mut() {
                rows.push(Row {
                    path: credential.name,
                    pair,
                });
            }
        }
    }
    for (connections, rows) in &tables {
        print_table(&bench, *connections, rows);
    }
    print_targets(&tables);
    if let Some(err) = failure {
        return Err(
            err.context("the benchmark stopped early: the figures above are all it measured")
        );
    }

    flood(root, &mut bench, &credentials[0]).context("the flood stopped early")?;
    if !refused.is_empty() {
        let names: Vec<&str> = refused.iter().map(|(name, _)| *name).collect();
        bail!(
            "paths not measured, their credential refused: {}",
            names.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "Running 8s test @ http://127.0.0.1:4000/api/v1/projects
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.02ms  21.63ms   83.17%
    Req/Sec     3.90k   312.27     4.50k    72.50%
  Latency Distribution
     50%    1.92ms
     75%    2.49ms
     90%    3.21ms
     99%    5.40ms
  62071 requests in 8.00s, 171.05MB read
Requests/sec:   7757.31
Transfer/sec:     21.38MB
";

    #[test]
    fn a_clean_run_is_read() {
        let load = parse_wrk(CLEAN).unwrap();
        assert_eq!(
            load,
            Load {
                requests_per_sec: 7757.31,
                p50_ms: 1.92,
                p99_ms: 5.40,
                requests: 62071,
                ..Load::default()
            }
        );
        assert!(!load.has_errors());
        assert_eq!(load.errors(), "");
    }

    #[test]
    fn errors_are_figures() {
        let text = CLEAN
            .replace("     99%    5.40ms", "     99%    1.02s")
            .replace("     50%    1.92ms", "     50%  950.00us")
            .replace(
                "Requests/sec:",
                "  Socket errors: connect 1, read 2, write 3, timeout 40\n  Non-2xx or 3xx \
                 responses: 17\nRequests/sec:",
            );
        let load = parse_wrk(&text).unwrap();
        assert!((load.p50_ms - 0.95).abs() < 1e-9, "{}", load.p50_ms);
        assert!((load.p99_ms - 1020.0).abs() < 1e-9, "{}", load.p99_ms);
        assert_eq!(
            (
                load.non_2xx,
                load.connect_errors,
                load.read_errors,
                load.write_errors,
                load.timeouts
            ),
            (17, 1, 2, 3, 40)
        );
        assert!(load.has_errors());
        assert_eq!(
            load.errors(),
            "17 non-2xx, 40 timeouts, socket errors: connect 1, read 2, write 3"
        );
    }

    #[test]
    fn output_that_is_not_wrk_s_is_an_error() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
        assert!(parse_wrk(&CLEAN.replace("     99%    5.40ms\n", "")).is_err());
        assert!(parse_wrk(&CLEAN.replace("5.40ms", "5.40parsecs")).is_err());
    }

    #[test]
    fn cpu_times_come_from_the_stat_fields_after_the_name() {
        let stat = "4242 (http bench) S 1 4242 4242 0 -1 4194560 2961 0 0 0 1234 567 0 0 20 0 \
                    9 0 123456 1000000 5000 18446744073709551615";
        assert_eq!(stat_ticks(stat), Some(1234 + 567));
        assert_eq!(stat_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn backends_are_recognised_by_their_title() {
        assert!(is_backend_of(
            "postgres: rh_app rhtest_abc 127.0.0.1(51234) idle\0\0\0",
            "rhtest_abc"
        ));
        assert!(!is_backend_of(
            "postgres: rh_app rhtest_other 127.0.0.1(51234) idle",
            "rhtest_abc"
        ));
        assert!(!is_backend_of("postgres: checkpointer ", "rhtest_abc"));
        assert!(!is_backend_of(
            "/usr/bin/rhtest_abc x rhtest_abc",
            "rhtest_abc"
        ));
    }

    #[test]
    fn ratios_without_meaning_show_as_a_dash() {
        assert_eq!(figure(ratio(1.0, 0.0), 6, 2), "     -");
        assert_eq!(figure(ratio(9.0, 10.0), 6, 2), "  0.90");
    }
}
