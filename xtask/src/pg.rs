//! PostgreSQL for development and tests: an external server named by the environment, or a
//! private cluster under `target/dev/` started from the system's binaries (as the `postgres`
//! user when we run as root, since PostgreSQL refuses to run as root).

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::run::{output, run_cmd};

const OWNER_ROLE: &str = "rh_owner";
const APP_ROLE: &str = "rh_app";
const DEV_DATABASE: &str = "rhesis";
/// Test databases (and their template) start with this; `cargo xtask test` drops leftovers.
const TEST_DATABASE_PREFIX: &str = "rhtest_";

fn random_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn running_as_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// The directory holding initdb, pg_ctl and psql.
fn pg_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return Ok(bin);
    }
    let bindir = output(Command::new("pg_config").arg("--bindir"))
        .context("no PostgreSQL binaries found: install PostgreSQL or set PG_BIN_DIR")?;
    Ok(PathBuf::from(bindir.trim()))
}

/// A private PostgreSQL cluster under `target/dev/pg`.
#[derive(Debug)]
pub(crate) struct Cluster {
    data: PathBuf,
    state_file: PathBuf,
    /// Whether the cluster serves TLS too, with a certificate for `localhost` from a test CA
    /// of its own ([`Cluster::ca_file`]).
    tls: bool,
}

#[derive(Debug, Clone)]
struct ClusterState {
    port: u16,
    superuser_password: String,
    owner_password: String,
    app_password: String,
}

impl ClusterState {
    fn load(path: &Path) -> Result<Option<Self>> {
        let Ok(text) = fs::read_to_string(path) else {
            return Ok(None);
        };
        let map: BTreeMap<&str, &str> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .collect();
        let get = |k: &str| {
            map.get(k)
                .map(|v| (*v).to_owned())
                .with_context(|| format!("{k} missing in {path:?}"))
        };
        Ok(Some(Self {
            port: get("PGPORT")?.parse().context("PGPORT")?,
            superuser_password: get("PG_SUPERUSER_PASSWORD")?,
            owner_password: get("PG_OWNER_PASSWORD")?,
            app_password: get("PG_APP_PASSWORD")?,
        }))
    }

    fn save(&self, path: &Path) -> Result<()> {
        let text = format!(
            "# Development secrets of the private PostgreSQL cluster. Generated; never commit.\n\
             PGPORT={}\nPG_SUPERUSER_PASSWORD={}\nPG_OWNER_PASSWORD={}\nPG_APP_PASSWORD={}\n",
            self.port, self.superuser_password, self.owner_password, self.app_password
        );
        write_private(path, &text)
    }
}

/// Writes a file readable by its owner only.
pub(crate) fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {path:?}"))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// The settings file of a private cluster, in its data directory, that its
/// `postgresql.conf` includes: a plain `pg_ctl start` (a test that stops and starts the
/// cluster) starts it as xtask does.
const SETTINGS_FILE: &str = "rhesis.conf";

impl Cluster {
    /// The development and test cluster, `target/dev/pg`.
    pub(crate) fn at(root: &Path) -> Self {
        Self::named(root, "pg", "cluster.env", true)
    }

    /// The cluster that a test stops and starts (`target/dev/pg-outage`): stopping the
    /// shared one would fail every test running beside it.
    pub(crate) fn outage(root: &Path) -> Self {
        Self::named(root, "pg-outage", "outage-cluster.env", false)
    }

    fn named(root: &Path, directory: &str, state_file: &str, tls: bool) -> Self {
        let dev = crate::target_dir(root).join("dev");
        Self {
            data: dev.join(directory),
            state_file: dev.join(state_file),
            tls,
        }
    }

    /// The certificate of the test CA that signed the cluster's TLS certificate.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.data.with_extension("ca.crt")
    }

    /// A test CA and a certificate for `localhost` (a DNS name only: a client that checks
    /// the name refuses it for `127.0.0.1`) in the data directory, where PostgreSQL looks
    /// for `server.crt` and `server.key`; made when missing.
    fn ensure_certificate(&self) -> Result<()> {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let (cert_file, key_file) = (self.data.join("server.crt"), self.data.join("server.key"));
        if cert_file.exists() && key_file.exists() && self.ca_file().exists() {
            return Ok(());
        }
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, "rhesis private cluster test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate()?;
        let cert = leaf.signed_by(&key, &ca)?;
        fs::write(&cert_file, cert.pem())?;
        write_private(&key_file, &key.serialize_pem())?;
        fs::write(self.ca_file(), ca.pem())?;
        Ok(())
    }

    /// Writes the cluster's settings to [`SETTINGS_FILE`] and makes `postgresql.conf`
    /// include it; says whether the settings changed.
    fn write_settings(&self, port: u16) -> Result<bool> {
        let mut settings = format!(
            "# Written by cargo xtask at every start.\n\
             port = {port}\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 200\n"
        );
        if self.tls {
            self.ensure_certificate()?;
            settings.push_str("ssl = on\n");
        }
        let file = self.data.join(SETTINGS_FILE);
        let changed = fs::read_to_string(&file).ok().as_deref() != Some(settings.as_str());
        fs::write(&file, settings)?;
        let conf = self.data.join("postgresql.conf");
        let text = fs::read_to_string(&conf).with_context(|| format!("reading {conf:?}"))?;
        let include = format!("include_if_exists = '{SETTINGS_FILE}'");
        if !text.lines().any(|line| line.trim() == include) {
            fs::write(&conf, format!("{text}\n{include}\n"))?;
        }
        self.chown_to_postgres(&self.data)?;
        Ok(changed)
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data
    }

    /// A command that runs as the cluster's owner: `postgres` when we are root.
    fn as_cluster_owner(&self, program: &Path) -> Command {
        if running_as_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn chown_to_postgres(&self, path: &Path) -> Result<()> {
        if running_as_root() {
            run_cmd(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(path),
            )?;
        }
        Ok(())
    }

    fn is_running(&self, bin: &Path) -> bool {
        self.data.join("PG_VERSION").exists()
            && self
                .as_cluster_owner(&bin.join("pg_ctl"))
                .args(["status", "-D"])
                .arg(&self.data)
                .output()
                .is_ok_and(|o| o.status.success())
    }

    /// Creates the cluster if needed, starts it if it is not running, and returns its state.
    fn ensure_running(&self) -> Result<ClusterState> {
        let bin = pg_bin_dir()?;
        let dev = self
            .data
            .parent()
            .context("cluster directory has no parent")?;
        fs::create_dir_all(dev)?;
        let mut state = match ClusterState::load(&self.state_file)? {
            Some(state) if self.data.join("PG_VERSION").exists() => state,
            _ => self.init(&bin)?,
        };
        if self.is_running(&bin) {
            // Started by an earlier version of these settings: the ones that can change
            // without a restart (TLS) are read again.
            if self.write_settings(state.port)? {
                run_cmd(
                    self.as_cluster_owner(&bin.join("pg_ctl"))
                        .args(["reload", "-D"])
                        .arg(&self.data)
                        .stdout(std::process::Stdio::null()),
                )?;
            }
        } else {
            state.port = free_port()?;
            state.save(&self.state_file)?;
            self.write_settings(state.port)?;
            eprintln!("starting private PostgreSQL on 127.0.0.1:{}", state.port);
            run_cmd(
                self.as_cluster_owner(&bin.join("pg_ctl"))
                    .args(["start", "-w", "-t", "60", "-D"])
                    .arg(&self.data)
                    .arg("-l")
                    .arg(self.data.join("server.log"))
                    .stdout(std::process::Stdio::null()),
            )?;
        }
        Ok(state)
    }

    fn init(&self, bin: &Path) -> Result<ClusterState> {
        if self.data.exists() {
            fs::remove_dir_all(&self.data)?;
        }
        fs::create_dir_all(&self.data)?;
        let state = ClusterState {
            port: free_port()?,
            superuser_password: random_password(),
            owner_password: random_password(),
            app_password: random_password(),
        };
        let pwfile = self.data.parent().context("no parent")?.join("pwfile");
        write_private(&pwfile, &state.superuser_password)?;
        self.chown_to_postgres(&self.data)?;
        self.chown_to_postgres(&pwfile)?;
        eprintln!("creating private PostgreSQL cluster in {:?}", self.data);
        let result = run_cmd(
            self.as_cluster_owner(&bin.join("initdb"))
                .arg("-D")
                .arg(&self.data)
                .args([
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    "--no-locale",
                    "-E",
                    "UTF8",
                ])
                .arg(format!("--pwfile={}", pwfile.display()))
                .stdout(std::process::Stdio::null()),
        );
        let _ = fs::remove_file(&pwfile);
        result?;
        state.save(&self.state_file)?;
        Ok(state)
    }

    pub(crate) fn stop(&self) -> Result<()> {
        let bin = pg_bin_dir()?;
        if self.is_running(&bin) {
            run_cmd(
                self.as_cluster_owner(&bin.join("pg_ctl"))
                    .args(["stop", "-m", "fast", "-D"])
                    .arg(&self.data),
            )?;
        }
        Ok(())
    }
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where the server, the migrations and the tests find their database.
#[derive(Debug)]
pub(crate) struct Database {
    /// A superuser connection (tests create a database per test with it).
    admin_url: Option<String>,
    owner_url: String,
    app_url: String,
    pub(crate) app_role: String,
    /// The test CA of a private cluster that serves TLS.
    ca_file: Option<PathBuf>,
}

impl Database {
    /// `DATABASE_URL` when it is reachable, else the private cluster with its dev database.
    pub(crate) fn for_dev(root: &Path) -> Result<Self> {
        if let Ok(app_url) = std::env::var("DATABASE_URL") {
            if psql_url(&app_url, "SELECT 1").is_ok() {
                let owner_url = std::env::var("MIGRATION_DATABASE_URL").unwrap_or(app_url.clone());
                let app_role = std::env::var("APP_DB_ROLE").unwrap_or(APP_ROLE.to_owned());
                return Ok(Self {
                    admin_url: None,
                    owner_url,
                    app_url,
                    app_role,
                    ca_file: None,
                });
            }
            eprintln!("DATABASE_URL is set but not reachable: using a private cluster");
        }
        let db = Self::private(root)?;
        db.create_database(DEV_DATABASE)?;
        Ok(db.with_database(DEV_DATABASE))
    }

    /// `DATABASE_ADMIN_URL` (+ `MIGRATION_DATABASE_URL`, `DATABASE_URL`) when given, else the
    /// private cluster.
    pub(crate) fn for_tests(root: &Path) -> Result<Self> {
        if let Ok(admin) = std::env::var("DATABASE_ADMIN_URL") {
            let owner_url = std::env::var("MIGRATION_DATABASE_URL")
                .context("DATABASE_ADMIN_URL is set: set MIGRATION_DATABASE_URL too")?;
            let app_url = std::env::var("DATABASE_URL")
                .context("DATABASE_ADMIN_URL is set: set DATABASE_URL too")?;
            let app_role = std::env::var("APP_DB_ROLE").unwrap_or(APP_ROLE.to_owned());
            return Ok(Self {
                admin_url: Some(admin),
                owner_url,
                app_url,
                app_role,
                ca_file: None,
            });
        }
        Self::private(root)
    }

    fn private(root: &Path) -> Result<Self> {
        Self::on(&Cluster::at(root))
    }

    /// The cluster a test stops and starts, with the same roles as [`Database::private`].
    pub(crate) fn outage(root: &Path) -> Result<Self> {
        Self::on(&Cluster::outage(root))
    }

    fn on(cluster: &Cluster) -> Result<Self> {
        let state = cluster.ensure_running()?;
        let url = |user: &str, password: &str| {
            format!(
                "postgres://{user}:{password}@127.0.0.1:{}/postgres",
                state.port
            )
        };
        let db = Self {
            admin_url: Some(url("postgres", &state.superuser_password)),
            owner_url: url(OWNER_ROLE, &state.owner_password),
            app_url: url(APP_ROLE, &state.app_password),
            app_role: APP_ROLE.to_owned(),
            ca_file: cluster.tls.then(|| cluster.ca_file()),
        };
        db.admin_sql(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}') THEN
                 CREATE ROLE {OWNER_ROLE};
               END IF;
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                 CREATE ROLE {APP_ROLE};
               END IF;
             END $$;
             ALTER ROLE {OWNER_ROLE} WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
               PASSWORD '{}';
             ALTER ROLE {APP_ROLE} WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
               NOINHERIT PASSWORD '{}';",
            state.owner_password, state.app_password
        ))?;
        Ok(db)
    }

    fn admin_sql(&self, sql: &str) -> Result<String> {
        let url = self
            .admin_url
            .as_deref()
            .context("no administrator connection")?;
        psql_url(url, sql)
    }

    fn create_database(&self, name: &str) -> Result<()> {
        let exists = self.admin_sql(&format!(
            "SELECT 1 FROM pg_database WHERE datname = '{name}'"
        ))?;
        if exists.trim().is_empty() {
            self.admin_sql(&format!("CREATE DATABASE {name} OWNER {OWNER_ROLE}"))?;
            self.admin_sql(&format!(
                "REVOKE ALL ON DATABASE {name} FROM PUBLIC; \
                 GRANT CONNECT ON DATABASE {name} TO {APP_ROLE}"
            ))?;
        }
        Ok(())
    }

    fn with_database(self, name: &str) -> Self {
        let swap = |url: &str| match url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => url.to_owned(),
        };
        Self {
            admin_url: self.admin_url.as_deref().map(swap),
            owner_url: swap(&self.owner_url),
            app_url: swap(&self.app_url),
            app_role: self.app_role,
            ca_file: self.ca_file,
        }
    }

    /// Test databases of earlier runs (a killed run leaves some).
    pub(crate) fn drop_stale_test_databases(&self) -> Result<()> {
        let names = self.admin_sql(&format!(
            "SELECT datname FROM pg_database WHERE datname LIKE '{TEST_DATABASE_PREFIX}%'"
        ))?;
        for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("unexpected database name {name:?}");
            }
            self.admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        }
        Ok(())
    }

    pub(crate) fn describe(&self) -> String {
        // Host, port and database only: never the password.
        let without_credentials = self.app_url.split_once('@').map_or("?", |(_, rest)| rest);
        format!("postgres://{without_credentials}")
    }

    /// The server's database settings, under the development profile (a command may name
    /// another after these): production would refuse the private cluster's plain
    /// connections.
    pub(crate) fn server_env(&self) -> Vec<(String, String)> {
        vec![
            ("APP_ENV".into(), "development".into()),
            ("DATABASE_URL".into(), self.app_url.clone()),
            ("MIGRATION_DATABASE_URL".into(), self.owner_url.clone()),
            ("APP_DB_ROLE".into(), self.app_role.clone()),
        ]
    }

    pub(crate) fn test_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("TEST_DATABASE_URL".into(), self.app_url.clone()),
            ("TEST_MIGRATION_DATABASE_URL".into(), self.owner_url.clone()),
            ("APP_DB_ROLE".into(), self.app_role.clone()),
        ];
        if let Some(admin) = &self.admin_url {
            env.push(("TEST_DATABASE_ADMIN_URL".into(), admin.clone()));
        }
        if let Ok(bin) = pg_bin_dir() {
            env.push(("TEST_PSQL".into(), bin.join("psql").display().to_string()));
        }
        if let Some(ca) = &self.ca_file {
            env.push(("TEST_DATABASE_CA_CERT".into(), ca.display().to_string()));
        }
        env
    }

    /// What a test needs to stop and start the outage cluster and to reach it: its URLs as
    /// [`Database::test_env`] names them, prefixed `TEST_OUTAGE_`, its data directory, the
    /// binaries and the user that runs them.
    pub(crate) fn outage_test_env(&self, cluster: &Cluster) -> Result<Vec<(String, String)>> {
        let mut env: Vec<(String, String)> = self
            .test_env()
            .into_iter()
            .filter(|(name, _)| name.starts_with("TEST_") && name.ends_with("_URL"))
            .map(|(name, value)| (name.replacen("TEST_", "TEST_OUTAGE_", 1), value))
            .collect();
        env.push((
            "TEST_OUTAGE_PGDATA".into(),
            cluster.data_dir().display().to_string(),
        ));
        env.push((
            "TEST_OUTAGE_PG_CTL".into(),
            pg_bin_dir()?.join("pg_ctl").display().to_string(),
        ));
        if running_as_root() {
            env.push(("TEST_OUTAGE_RUN_AS".into(), "postgres".into()));
        }
        Ok(env)
    }
}

/// Runs SQL through psql; the password travels in the environment, not on the command line.
fn psql_url(url: &str, sql: &str) -> Result<String> {
    let (without_password, password) = split_password(url);
    let psql = pg_bin_dir().map_or_else(|_| PathBuf::from("psql"), |bin| bin.join("psql"));
    let mut cmd = Command::new(psql);
    cmd.args([
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        &without_password,
        "-c",
        sql,
    ])
    .env("PGCONNECT_TIMEOUT", "5");
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    output(&mut cmd)
}

/// `postgres://user:pw@host/db` -> (`postgres://user@host/db`, `pw`).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return (url.to_owned(), None);
    };
    match userinfo.split_once(':') {
        Some((user, password)) => (
            format!("{scheme}://{user}@{host}"),
            Some(password.to_owned()),
        ),
        None => (url.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_the_url() {
        assert_eq!(
            split_password("postgres://app:s3cret@127.0.0.1:5432/db"),
            (
                "postgres://app@127.0.0.1:5432/db".to_owned(),
                Some("s3cret".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://app@127.0.0.1/db"),
            ("postgres://app@127.0.0.1/db".to_owned(), None)
        );
    }
}
