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

pub(crate) fn crypto(root: &Path) -> Result<()> {
    const N: &str = "100000";
    cargo(
        root,
        &[
            "build",
            "--release",
            "--package",
            "crypto",
            "--example",
            "fernet_bench",
        ],
    )?;
    cargo(
        root,
        &[
            "build",
            "--release",
            "--package",
            "server",
            "--example",
            "reencrypt_bench",
        ],
    )?;
    let examples = crate::target_dir(root).join("release").join("examples");

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
