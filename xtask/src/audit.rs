//! `cargo xtask audit`: cargo-deny over advisories, licences, bans and sources.
//!
//! Where the RustSec snapshot `../shared/advisory-db.tgz` exists (machines without internet),
//! it is unpacked into `target/advisory-dbs/` as the git repository cargo-deny expects and
//! cargo-deny runs with `--offline`; elsewhere cargo-deny fetches the database as usual.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run::run_cmd;

/// The folder name cargo-deny derives from the default advisory database URL.
const DB_FOLDER: &str = "advisory-db-3157b0e258782691";
const CARGO_DENY_VERSION: &str = "0.20.2";

pub(crate) fn run(root: &Path) -> Result<()> {
    ensure_cargo_deny()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let snapshot = root.join("..").join("shared").join("advisory-db.tgz");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).arg("deny");
    if snapshot.exists() {
        // cargo-deny reads the licences of every package of every target: have them all.
        // Only the advisory database is offline; the crate registry is reachable.
        crate::run::cargo(root, &["fetch", "--locked"])?;
        let db_root = crate::target_dir(root).join("advisory-dbs");
        unpack_snapshot(&snapshot, &db_root.join(DB_FOLDER))?;
        let config = offline_config(root, &db_root)?;
        cmd.arg("--offline")
            .arg("--config")
            .arg(config)
            .arg("check");
    } else {
        cmd.arg("check");
    }
    run_cmd(cmd.args(["advisories", "licenses", "bans", "sources"]))
}

fn ensure_cargo_deny() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let installed = Command::new(&cargo)
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        eprintln!("installing cargo-deny {CARGO_DENY_VERSION} (once per machine)");
        run_cmd(Command::new(&cargo).args([
            "install",
            "--locked",
            "cargo-deny",
            "--version",
            CARGO_DENY_VERSION,
        ]))?;
    }
    Ok(())
}

/// Unpacks the snapshot as a one-commit git repository dated as the snapshot itself, so that
/// cargo-deny's staleness check sees the snapshot's true age.
fn unpack_snapshot(snapshot: &Path, dir: &Path) -> Result<()> {
    if dir.join(".git").exists() {
        return Ok(());
    }
    if dir.exists() {
        fs::remove_dir_all(dir)?;
    }
    fs::create_dir_all(dir)?;
    run_cmd(
        Command::new("tar")
            .arg("-xzf")
            .arg(snapshot)
            .arg("-C")
            .arg(dir),
    )?;
    let date = fs::metadata(dir.join("README.md"))
        .and_then(|m| m.modified())
        .context("the snapshot has no README.md")?;
    let secs = date
        .duration_since(std::time::UNIX_EPOCH)
        .context("snapshot dated before 1970")?
        .as_secs();
    let git_date = format!("@{secs} +0000");
    let git = |args: &[&str]| {
        run_cmd(
            Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(["-c", "user.name=xtask", "-c", "user.email=xtask@localhost"])
                .args(["-c", "commit.gpgsign=false"])
                .args(args)
                .env("GIT_AUTHOR_DATE", &git_date)
                .env("GIT_COMMITTER_DATE", &git_date),
        )
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "RustSec advisory database snapshot"])?;
    Ok(())
}

/// deny.toml with `db-path` pointing at the unpacked snapshot.
fn offline_config(root: &Path, db_root: &Path) -> Result<std::path::PathBuf> {
    let text = fs::read_to_string(root.join("deny.toml")).context("reading deny.toml")?;
    let mut replaced = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("db-path") {
                replaced = true;
                format!("db-path = {:?}", db_root.display().to_string())
            } else {
                line.to_owned()
            }
        })
        .collect();
    if !replaced {
        bail!("deny.toml has no db-path line under [advisories]");
    }
    let path = crate::target_dir(root).join("deny-offline.toml");
    fs::write(&path, lines.join("\n"))?;
    Ok(path)
}
