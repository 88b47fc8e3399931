//! `cargo xtask deploy-check`: the deployment, as far as a machine without a container
//! engine can prove it. The Kubernetes manifests render (`kubectl kustomize`, base and
//! production overlay); checkov (PyPI, pinned, in a virtual environment of its own) scans
//! them and the Dockerfile with no failed check (a skip is justified where it is made); the
//! image's licence file is made as the Dockerfile makes it; and the release binary serves
//! as the image runs it: as UID 65532 with no capabilities and no
//! new privileges, every file system read-only but one temporary directory it is given.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::run::{cargo, output, run_cmd};

/// The checkov release the scan is pinned to.
const CHECKOV: &str = "checkov==3.3.30";
/// The cargo-about release the image's licence file is made with (the Dockerfile's too).
const CARGO_ABOUT: &str = "0.9.3";
/// The image's user (distroless' `nonroot`).
const IMAGE_UID: &str = "65532";

pub(crate) fn check(root: &Path) -> Result<()> {
    let dir = crate::target_dir(root).join("deploy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let rendered = render(root, &dir)?;
    scan(root, &rendered)?;
    licences(root, &dir)?;
    unprivileged(root, &dir)?;
    println!("deploy-check: manifests render, checkov passes, the binary serves unprivileged");
    Ok(())
}

/// Renders the base and the production overlay; the files written.
fn render(root: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    if Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_err()
    {
        bail!("kubectl is needed to render deploy/k8s (kubectl kustomize)");
    }
    let mut files = Vec::new();
    for (name, path) in [
        ("base", "deploy/k8s/base"),
        ("migrate", "deploy/k8s/migrate"),
        ("production", "deploy/k8s/overlays/production"),
        (
            "production-migrate",
            "deploy/k8s/overlays/production-migrate",
        ),
    ] {
        let yaml = output(
            Command::new("kubectl")
                .current_dir(root)
                .args(["kustomize", path]),
        )
        .with_context(|| format!("rendering {path}"))?;
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, yaml)?;
        println!("rendered {path} -> {}", file.display());
        files.push(file);
    }
    Ok(files)
}

/// checkov in `target/dev/checkov`, installed when missing or of another version.
fn checkov(root: &Path) -> Result<PathBuf> {
    let venv = crate::target_dir(root).join("dev").join("checkov");
    let bin = venv.join("bin").join("checkov");
    let stamp = venv.join("installed");
    if bin.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == CHECKOV) {
        return Ok(bin);
    }
    println!("installing {CHECKOV} into {}", venv.display());
    let python3 = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    run_cmd(Command::new(python3).args(["-m", "venv"]).arg(&venv))?;
    run_cmd(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "-q", "--disable-pip-version-check", CHECKOV])
            .stdout(Stdio::null()),
    )?;
    std::fs::write(&stamp, CHECKOV)?;
    Ok(bin)
}

/// checkov over the Dockerfile and the rendered manifests: no failed check.
fn scan(root: &Path, rendered: &[PathBuf]) -> Result<()> {
    let checkov = checkov(root)?;
    // The production overlays are what is deployed; a base alone has no namespace and no
    // image, by design of a base.
    let production: Vec<&PathBuf> = rendered
        .iter()
        .filter(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("production"))
        })
        .collect();
    let mut targets = vec![("dockerfile", root.join("deploy").join("Dockerfile"))];
    targets.extend(production.iter().map(|f| ("kubernetes", (*f).clone())));
    let mut failed = Vec::new();
    for (framework, file) in targets {
        let out = Command::new(&checkov)
            .args([
                "--quiet",
                "--compact",
                "--skip-download",
                "--framework",
                framework,
                "-f",
            ])
            .arg(&file)
            // Offline: no download of policies or of the guidelines' mapping.
            .env("BC_SKIP_MAPPING", "TRUE")
            .output()
            .context("running checkov")?;
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        if !out.status.success() {
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
            failed.push(file.display().to_string());
        }
    }
    if !failed.is_empty() {
        bail!("checkov found failed checks in {}", failed.join(", "));
    }
    println!("checkov: no failed check");
    // What checkov does not judge: that the rendered NetworkPolicies allow what their
    // sources say (kustomize's labels must never reach a rule's peers).
    let python = checkov
        .parent()
        .context("checkov has no directory")?
        .join("python");
    run_cmd(
        Command::new(python)
            .arg(root.join("xtask").join("check_policies.py"))
            .args(&production)
            .arg("--")
            .arg(root.join("deploy/k8s/base/networkpolicy.yaml"))
            .arg(root.join("deploy/k8s/migrate/networkpolicy.yaml")),
    )
    .context("the rendered NetworkPolicies differ from their sources")?;
    println!("network policies: rendered as written");
    Ok(())
}

/// The image's third-party licence file, made as the Dockerfile makes it (the same
/// cargo-about, configuration and template): it must name every licence of the build.
fn licences(root: &Path, dir: &Path) -> Result<()> {
    let dockerfile = std::fs::read_to_string(root.join("deploy").join("Dockerfile"))?;
    let pinned = format!("cargo-about@{CARGO_ABOUT}");
    if !dockerfile.contains(&pinned) {
        bail!("deploy/Dockerfile does not install {pinned}, the version deploy-check runs");
    }
    let install = crate::target_dir(root).join("dev").join("cargo-about");
    let bin = install.join("bin").join("cargo-about");
    let stamp = install.join("installed");
    if !(bin.exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == CARGO_ABOUT)) {
        cargo(
            root,
            &[
                "install",
                "--locked",
                "--features",
                "cli",
                &pinned,
                "--root",
                install.to_str().context("a non-UTF-8 target directory")?,
            ],
        )?;
        std::fs::write(&stamp, CARGO_ABOUT)?;
    }
    let file = dir.join("THIRD-PARTY-LICENSES.html");
    run_cmd(
        Command::new(&bin)
            .current_dir(root)
            .args(["about", "generate", "--workspace", "--output-file"])
            .arg(&file)
            .arg("deploy/about.hbs"),
    )?;
    let text = std::fs::read_to_string(&file)?;
    let licences = text.matches("<h2>").count();
    if licences == 0 {
        bail!("the licence file names no licence");
    }
    println!("licences: {licences} texts in {}", file.display());
    Ok(())
}

/// Stops the server however the check ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The release binary as the image runs it: UID and GID 65532, no capabilities, no new
/// privileges, in a mount namespace where every file system is read-only but the one
/// directory it is given. It must serve, and nothing but that directory may be written.
fn unprivileged(root: &Path, dir: &Path) -> Result<()> {
    cargo(
        root,
        &[
            "build",
            "--release",
            "--locked",
            "-p",
            "server",
            "--bin",
            "rhesis-server",
        ],
    )?;
    let binary = crate::target_dir(root)
        .join("release")
        .join("rhesis-server");
    let env = crate::migrated_dev_env(root, &binary)?;

    let writable = dir.join("writable");
    std::fs::create_dir_all(&writable)?;
    run_cmd(
        Command::new("chown")
            .arg(format!("{IMAGE_UID}:{IMAGE_UID}"))
            .arg(&writable),
    )?;
    let port = crate::pg::free_port()?;
    // Every mount read-only but the writable directory (its own bind mount); the kernel's
    // /proc, /sys and /dev as they are.
    let script = r#"
set -ef
mount --make-rprivate /
mount --bind "$WRITABLE" "$WRITABLE"
mounts=$(awk '{print $2}' /proc/self/mounts | sort -u)
for m in $mounts; do
  case "$m" in /proc|/proc/*|/sys|/sys/*|/dev/pts|/dev/mqueue|"$WRITABLE") continue;; esac
  mount -o remount,bind,ro "$m" || { echo "could not make $m read-only" >&2; exit 4; }
done
probe() { setpriv --reuid="$IMAGE_UID" --regid="$IMAGE_UID" --clear-groups --no-new-privs \
  --inh-caps=-all --bounding-set=-all -- "$@"; }
for target in $mounts /tmp /var/tmp "$BINARY_DIR"; do
  case "$target" in /proc|/proc/*|/sys|/sys/*|/dev/pts|/dev/mqueue|"$WRITABLE") continue;; esac
  [ -d "$target" ] || continue
  if probe sh -c "touch '$target/.rhesis-write-probe'" 2>/dev/null; then
    echo "writable for the server: $target" >&2; exit 3
  fi
done
probe sh -c "touch '$WRITABLE/.rhesis-write-probe'"
exec setpriv --reuid="$IMAGE_UID" --regid="$IMAGE_UID" --clear-groups --no-new-privs \
  --inh-caps=-all --bounding-set=-all -- "$BINARY" serve
"#;
    let binary_dir = binary
        .parent()
        .context("the binary has no directory")?
        .to_path_buf();
    let child = Command::new("unshare")
        .args(["--mount", "--fork", "sh", "-c", script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .env("APP_ENV", "test")
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("HTTP_WORKERS", "1")
        .env("HOME", &writable)
        .env("TMPDIR", &writable)
        .env("WRITABLE", &writable)
        .env("BINARY", &binary)
        .env("BINARY_DIR", &binary_dir)
        .env("IMAGE_UID", IMAGE_UID)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the server unprivileged (unshare, setpriv)")?;
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = running.0.try_wait()? {
            let mut log = String::new();
            if let Some(mut stderr) = running.0.stderr.take() {
                use std::io::Read;
                let _ = stderr.read_to_string(&mut log);
            }
            bail!("the unprivileged server stopped ({status}):\n{log}");
        }
        if status_of(port, "/health/ready").is_some_and(|status| status == 200) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the unprivileged server did not become ready on port {port}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The process that serves: the image's user, no capability at all.
    let pid =
        output(Command::new("pgrep").args(["-n", "-f", &format!("{} serve", binary.display())]))?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let none = ["0000000000000000"];
    if field("Uid:").iter().any(|uid| *uid != IMAGE_UID)
        || field("Gid:").iter().any(|gid| *gid != IMAGE_UID)
        || ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"]
            .iter()
            .any(|caps| field(caps) != none)
        || field("NoNewPrivs:") != ["1"]
    {
        bail!("the server does not run as {IMAGE_UID} without capabilities:\n{status}");
    }
    println!(
        "the release binary serves as UID {IMAGE_UID}, no capabilities, read-only file systems"
    );
    Ok(())
}

/// The status of `GET path` on the loopback port, if it answers.
fn status_of(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
