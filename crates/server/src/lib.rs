//! The composition root: configuration, telemetry, wiring of adapters into the HTTP app, and
//! the operator subcommands. The only crate that knows every other.

mod audit_verify;
mod background;
mod blocks;
pub mod config;
pub mod metrics;
mod migrate;
mod reencrypt;
mod seed;
pub mod telemetry;
mod tls;

use std::sync::Arc;

use adapters_postgres::{PgStore, PoolOptions, RoleReport, SecretColumns};
use api_http::{AppState, AuthSettings};
use ports::SystemClock;
use secrecy::ExposeSecret;

use crate::config::{ConfigError, Profile, ServeArgs};

pub use audit_verify::{HeadWitness, audit_verify};
pub use blocks::blocks;
pub use migrate::migrate;
pub use reencrypt::reencrypt;
pub use seed::{DEV_ADMIN_EMAIL, DEV_ADMIN_SUBJECT, seed_dev};

/// Why the server did not start. Messages name what is wrong, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration")]
    Config(#[from] ConfigError),
    #[error("could not connect to the database")]
    Database(#[source] adapters_postgres::DatabaseError),
    #[error("database error")]
    Store(#[source] ports::StoreError),
    #[error(
        "refusing to run in production: the database role {role:?} of DATABASE_URL \
         {problems}; connect as the least-privilege application role (see docs/operations.md)"
    )]
    UnsafeDatabaseRole { role: String, problems: String },
    #[error("{0} is for the development profile only")]
    DevelopmentOnly(&'static str),
    #[error("{0} is refused in production")]
    NotInProduction(&'static str),
    #[error("{0} may end at most {1} days from now in production")]
    WindowTooLong(&'static str, i64),
    #[error(
        "refusing to run in production: stored secrets do not open under the configured keys \
         in {0}; check DB_ENCRYPTION_KEY (see docs/operations.md)"
    )]
    UnopenableSecrets(String),
    #[error("the audit log was altered: {0}")]
    AuditLogBroken(String),
    #[error(
        "refusing to run in production: AUDIT_CHAIN_KEY does not give the newest event of {0}; \
         events appended with it would never verify (see docs/operations.md)"
    )]
    WrongAuditKey(String),
    /// Connecting for the migrations, or a migration, failed (`migration`'s own message).
    #[error(transparent)]
    Migration(#[from] migration::MigrationError),
    #[error("could not listen on the configured address")]
    Bind(#[source] std::io::Error),
    #[error("{var} is not a PostgreSQL connection string the server takes: {reason}")]
    InvalidDatabaseUrl {
        var: &'static str,
        reason: adapters_postgres::InvalidUrl,
    },
    #[error(
        "refusing to run in production: {var} connects with sslmode={mode}; use \
         sslmode=verify-full (with DATABASE_SSL_ROOT_CERT or the URL's sslrootcert) or a Unix \
         socket (see docs/operations.md)"
    )]
    UnverifiedDatabase {
        var: &'static str,
        mode: &'static str,
    },
    #[error("the stop signals could not be listened to")]
    Signals(#[source] std::io::Error),
    #[error("the metrics recorder could not be installed")]
    Metrics(#[source] metrics_exporter_prometheus::BuildError),
}

/// Checks the connection string `var` names (a scheme and parameters the driver takes, a CA
/// file that holds certificates); in production the database must be reached over a Unix
/// socket, or over TLS that checks the server's certificate and its name
/// (`sslmode=verify-full`): anything less is refused.
pub(crate) fn check_database_url(
    profile: Profile,
    var: &'static str,
    url: &str,
) -> Result<(), StartupError> {
    use adapters_postgres::{TlsMode, Transport};
    let transport = adapters_postgres::transport(url)
        .map_err(|reason| StartupError::InvalidDatabaseUrl { var, reason })?;
    if let Some(ca) = config::url_root_cert(url) {
        tls::certificates(
            std::path::Path::new(&ca),
            "the sslrootcert of the database URL",
        )?;
    }
    if profile != Profile::Production {
        return Ok(());
    }
    match transport {
        Transport::UnixSocket | Transport::Tcp(TlsMode::VerifyFull) => Ok(()),
        Transport::Tcp(mode) => Err(StartupError::UnverifiedDatabase {
            var,
            mode: mode.as_str(),
        }),
    }
}

/// Connects to the application database and checks the role it connects as: in production a
/// role that is superuser, bypasses RLS, may create databases or roles, or owns tables is
/// refused; elsewhere it is a warning.
pub async fn connect_checked(args: &ServeArgs) -> Result<(PgStore, RoleReport), StartupError> {
    refuse_plaintext_window(args)?;
    connect(args).await
}

/// In production a plaintext window is refused: it is for migrating legacy data. The window
/// for unbound tokens (a migration from the Python backend, in production too) is time-boxed.
fn refuse_plaintext_window(args: &ServeArgs) -> Result<(), StartupError> {
    if args.profile != Profile::Production {
        return Ok(());
    }
    if args.encryption.plaintext_until.is_some() {
        return Err(StartupError::NotInProduction(
            "DB_ENCRYPTION_PLAINTEXT_UNTIL",
        ));
    }
    let longest = config::MAX_UNBOUND_WINDOW;
    if args
        .encryption
        .unbound_until
        .is_some_and(|until| until > ports::Clock::now(&SystemClock) + longest)
    {
        return Err(StartupError::WindowTooLong(
            "DB_ENCRYPTION_UNBOUND_UNTIL",
            longest.num_days(),
        ));
    }
    Ok(())
}

/// As [`connect_checked`], but a plaintext window is allowed in every profile: the
/// re-encryption command is how legacy plaintext gets encrypted.
async fn connect(args: &ServeArgs) -> Result<(PgStore, RoleReport), StartupError> {
    connect_with_clock(args, Arc::new(SystemClock)).await
}

/// As [`connect`], reading time from `clock`.
async fn connect_with_clock(
    args: &ServeArgs,
    clock: Arc<dyn ports::Clock>,
) -> Result<(PgStore, RoleReport), StartupError> {
    let url = args.database.url()?;
    check_database_url(args.profile, "DATABASE_URL", url.expose_secret())?;
    if let Some(ca) = &args.database.ssl_root_cert {
        tls::certificates(ca, "DATABASE_SSL_ROOT_CERT")?;
    }
    let cipher = args.encryption.cipher()?;
    let audit_key = Arc::new(args.audit.key(args.profile)?);
    let options = PoolOptions {
        max_connections: args.database.max_connections,
        acquire_timeout: args.database.acquire_timeout(),
        root_cert: args.database.ssl_root_cert.clone(),
        statement_timeout: Some(std::time::Duration::from_millis(
            args.database.statement_timeout_ms,
        )),
    };
    let db = adapters_postgres::connect(url.expose_secret(), options)
        .await
        .map_err(StartupError::Database)?;
    let report = adapters_postgres::inspect_role(&db)
        .await
        .map_err(StartupError::Store)?;
    let problems = report.problems();
    if !problems.is_empty() {
        if args.profile == Profile::Production {
            return Err(StartupError::UnsafeDatabaseRole {
                role: report.role.clone(),
                problems: problems.join(", "),
            });
        }
        tracing::warn!(role = %report.role, problems = %problems.join(", "),
            "the database role is not least-privilege; production would refuse it");
    }
    let secrets = Arc::new(SecretColumns::new(cipher, Arc::clone(&clock)));
    Ok((PgStore::new(db, clock, secrets, audit_key), report))
}

/// Organizations and values per organization the startup self-check samples.
const SELF_CHECK_ORGANIZATIONS: usize = 20;
const SELF_CHECK_PER_ORGANIZATION: u64 = 5;

/// Opens a sample of every secret column: in production a column whose values open under no
/// key stops the start (a wrong or missing key); elsewhere it is a warning.
pub async fn check_secrets(store: &PgStore, profile: Profile) -> Result<(), StartupError> {
    let failures = adapters_postgres::unscoped_self_check(
        store.database(),
        store.secrets(),
        SELF_CHECK_ORGANIZATIONS,
        SELF_CHECK_PER_ORGANIZATION,
    )
    .await
    .map_err(StartupError::Store)?;
    if failures.is_empty() {
        return Ok(());
    }
    let columns = failures
        .iter()
        .map(|f| {
            format!(
                "{}.{} ({} of {} sampled)",
                f.table, f.column, f.failed, f.sampled
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if profile == Profile::Production {
        return Err(StartupError::UnopenableSecrets(columns));
    }
    tracing::warn!(columns = %columns, "stored secrets do not open under the configured keys");
    Ok(())
}

/// Checks that the audit chain key gives the newest event of the system chain and of a sample
/// of organizations' chains: a server with another key would append events that never verify.
/// In production a chain it does not fit stops the start; elsewhere it is a warning.
pub async fn check_audit_key(store: &PgStore, profile: Profile) -> Result<(), StartupError> {
    let organizations = adapters_postgres::unscoped_organization_ids(store.database())
        .await
        .map_err(StartupError::Store)?;
    let sample = std::iter::once(None).chain(
        organizations
            .into_iter()
            .take(SELF_CHECK_ORGANIZATIONS)
            .map(|id| Some(domain::OrganizationId::from_uuid(id))),
    );
    let mut misfits = Vec::new();
    for organization in sample {
        if store
            .unscoped_audit_key_fits(organization)
            .await
            .map_err(StartupError::Store)?
            == Some(false)
        {
            misfits.push(organization.map_or("the system chain".to_owned(), |o| {
                format!("organization {o}")
            }));
        }
    }
    if misfits.is_empty() {
        return Ok(());
    }
    let chains = misfits.join(", ");
    if profile == Profile::Production {
        return Err(StartupError::WrongAuditKey(chains));
    }
    tracing::warn!(chains = %chains, "AUDIT_CHAIN_KEY does not give the newest audit events");
    Ok(())
}

/// How often an API token's `last_used_at` is written at most.
const TOKEN_USE_RESOLUTION: chrono::Duration = chrono::Duration::minutes(1);

/// The authentication settings of `serve`: the access-token keys (refused when missing or
/// short), fresh-authentication age, and the development login in the development profile.
pub fn auth_settings(args: &ServeArgs) -> Result<AuthSettings, StartupError> {
    Ok(AuthSettings {
        jwt: args.auth.jwt(args.profile)?,
        fresh_auth_max_age: args.auth.fresh_auth_max_age(),
        token_use_resolution: TOKEN_USE_RESOLUTION,
        dev_login_subject: (args.profile == Profile::Development)
            .then(|| DEV_ADMIN_SUBJECT.to_owned()),
    })
}

/// How often a session's last use is written at most.
const SESSION_TOUCH_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// The browser login, when an identity provider is configured. Nothing is fetched here: the
/// provider is discovered at the first login, so a provider that is down stops logins only.
pub fn login_settings(
    args: &ServeArgs,
    attempts: Arc<dyn ports::LoginAttempts>,
    clock: Arc<dyn ports::Clock>,
) -> Result<Option<Arc<api_http::LoginSettings>>, StartupError> {
    let login = &args.login;
    let Some(issuer) = login.issuer()? else {
        return Ok(None);
    };
    let client_id = login
        .oidc_client_id
        .clone()
        .ok_or(ConfigError::LoginUnset("AUTH0_CLIENT_ID"))?;
    let client_secret = login.client_secret()?;
    let public_url = login
        .public_url
        .as_deref()
        .ok_or(ConfigError::LoginUnset("PUBLIC_URL"))?
        .trim_end_matches('/');
    let frontend_url = args
        .browser
        .frontend_url
        .clone()
        .ok_or(ConfigError::LoginUnset("FRONTEND_URL"))?;
    if args.profile == Profile::Production
        && !(issuer.url.starts_with("https://") && public_url.starts_with("https://"))
    {
        return Err(ConfigError::Login(
            "the identity provider and PUBLIC_URL must be https in production",
        )
        .into());
    }
    let provider = adapters_auth0::OidcProvider::new(
        adapters_auth0::OidcSettings {
            issuer: issuer.url,
            client_id,
            client_secret,
            redirect_uri: format!("{public_url}/auth/callback"),
            audience: login.oidc_audience.clone(),
            organization: login.oidc_organization.clone(),
            auth0_logout: issuer.auth0,
            refresh_every: std::time::Duration::from_secs(3600),
            unknown_key_cooldown: std::time::Duration::from_secs(10),
            timeout: std::time::Duration::from_secs(10),
        },
        clock,
    )
    .map_err(|_| ConfigError::Login("OIDC_ISSUER_URL or PUBLIC_URL is not a URL"))?;
    Ok(Some(Arc::new(api_http::LoginSettings {
        provider: Arc::new(provider),
        attempts,
        frontend_url,
    })))
}

/// How often the limiters forget the clients whose budget is full again, so their memory
/// follows the clients of the last seconds, not of all time.
const FORGET_IDLE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// How often the records the graduated response no longer remembers are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// How often counted refusals whose window closed are recorded.
const REFUSAL_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How often the API token and session uses noted by requests are written down.
const USE_RECORD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The background work of a server: keeping the credential cache current; writing the noted API token and session uses and the
/// counted refusals off the request path; forgetting idle clients, reading the blocks every
/// replica and the operator set, and purging stale records; logging the audit chains'
/// heads.
fn background(
    use_cases: app::App,
    refusals: Arc<api_http::RefusalLog>,
    limiters: api_http::Limiters,
    blocker: api_http::Blocker,
    refresh: std::time::Duration,
    store: Arc<PgStore>,
    args: &ServeArgs,
) -> background::Background {
    use background::Round;
    let mut tasks = background::Background::new();
    tasks.run(store.keep_credentials_current());
    tasks.every(USE_RECORD_EVERY, false, Round::Finish, move || {
        let use_cases = use_cases.clone();
        async move {
            use_cases.record_token_uses().await;
            use_cases.record_session_touches().await;
        }
    });
    tasks.every(REFUSAL_FLUSH_EVERY, false, Round::Finish, move || {
        let refusals = Arc::clone(&refusals);
        async move {
            refusals.flush(false).await;
        }
    });
    tasks.every(FORGET_IDLE_EVERY, false, Round::Cut, move || {
        limiters.forget_idle();
        std::future::ready(())
    });
    let (purger, purged, sessions) = (
        blocker.clone(),
        Arc::clone(&store),
        args.login.session_lifetime(),
    );
    tasks.every(PURGE_EVERY, false, Round::Cut, move || {
        let (purger, store) = (purger.clone(), Arc::clone(&purged));
        async move {
            if let Err(err) = purger.purge().await {
                tracing::warn!(error = %err, "stale client records could not be purged");
            }
            if let Err(err) = ports::SessionStore::purge(store.as_ref(), sessions).await {
                tracing::warn!(error = %err, "ended sessions could not be purged");
            }
            if let Err(err) = ports::LoginAttempts::purge(store.as_ref()).await {
                tracing::warn!(error = %err, "expired logins could not be purged");
            }
        }
    });
    tasks.every(refresh, true, Round::Cut, move || {
        let blocker = blocker.clone();
        async move {
            if let Err(err) = blocker.refresh().await {
                tracing::warn!(error = %err, "the block list could not be read; keeping the last");
            }
        }
    });
    // Logs the head of every audit chain that moved since it last logged (every chain at
    // the first round), as an INFO line with `security_event = "audit_chain_head"`, so that
    // an external log store keeps witnesses of the heads: `rhesis-server audit-verify
    // --head` checks later that a chain still holds its witnessed head (a cut tail, a
    // rewritten chain).
    let logged = Arc::new(tokio::sync::Mutex::new(std::collections::HashMap::new()));
    tasks.every(args.audit.head_log_every(), false, Round::Cut, move || {
        let (store, logged) = (Arc::clone(&store), Arc::clone(&logged));
        async move {
            let mut logged = logged.lock().await;
            if let Err(err) = log_heads_once(&store, &mut logged).await {
                tracing::warn!(error = %err, "the audit chain heads could not be read");
            }
        }
    });
    tasks
}

/// One round of the audit heads' log; `logged` remembers the last head logged per chain.
async fn log_heads_once(
    store: &PgStore,
    logged: &mut std::collections::HashMap<
        Option<domain::OrganizationId>,
        adapters_postgres::AuditHead,
    >,
) -> Result<(), ports::StoreError> {
    let organizations = adapters_postgres::unscoped_organization_ids(store.database()).await?;
    let chains = std::iter::once(None).chain(
        organizations
            .into_iter()
            .map(|id| Some(domain::OrganizationId::from_uuid(id))),
    );
    for organization in chains {
        let Some(head) = store.unscoped_audit_head(organization).await? else {
            continue;
        };
        if logged.get(&organization) == Some(&head) {
            continue;
        }
        let witness = HeadWitness {
            organization,
            seq: head.seq,
            hash: head.hash,
        };
        tracing::info!(security_event = "audit_chain_head",
            chain = %audit_verify::chain_label(organization), seq = head.seq,
            hash = %crypto::audit_hash_hex(&head.hash), %witness, "audit chain head");
        logged.insert(organization, head);
    }
    Ok(())
}

/// Checks the TLS settings (both files or neither, readable, the key matching the
/// certificate) without binding.
pub fn check_tls(args: &ServeArgs) -> Result<(), StartupError> {
    if tls::server_config(&args.tls)?.is_none() && args.tls.http_bind.is_some() {
        return Err(ConfigError::PlainListenerWithoutTls.into());
    }
    Ok(())
}

/// A server bound to its address, ready to run.
pub struct Application {
    port: u16,
    http_port: Option<u16>,
    server: actix_web::dev::Server,
    refusals: Arc<api_http::RefusalLog>,
    use_cases: app::App,
    database: adapters_postgres::Database,
    metrics: Option<metrics::MetricsListener>,
    background: background::Background,
    /// Turns true at a second stop signal: nothing more is waited for.
    stop_forced: tokio::sync::watch::Receiver<bool>,
}

/// How long a stop may spend, once the requests are done, on its own writes (the counted
/// refusals and noted uses) and closing the pool: while the database is unreachable every
/// write would wait `DATABASE_ACQUIRE_TIMEOUT_MS`.
pub const STOP_WRITES_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The stop signals, listened to from the start: a signal before the server runs is
/// held, not lost (nor left to the default action, which would kill the process).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> Result<Self, StartupError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(StartupError::Signals)?,
            interrupt: signal(SignalKind::interrupt()).map_err(StartupError::Signals)?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// Stops `server` at the first SIGTERM or SIGINT (gracefully: the listeners close, the
/// requests in flight get their grace), and says on `forced` that a second one came (then
/// nothing more is waited for).
async fn stop_on_signals(
    mut signals: StopSignals,
    server: actix_web::dev::ServerHandle,
    forced: tokio::sync::watch::Sender<bool>,
) {
    signals.next().await;
    tracing::info!("stopping: the listeners close, the requests in flight get their grace");
    // The command is sent at once; its completion is the server's end, awaited by
    // `run_until_stopped`.
    drop(server.stop(true));
    signals.next().await;
    let _ = forced.send(true);
    // Held until the process ends: a dropped sender would read as a second signal.
    std::future::pending::<()>().await;
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects, checks, wires and binds (port 0 picks a free port).
    pub async fn build(args: &ServeArgs) -> Result<Self, StartupError> {
        Self::build_with_clock(args, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], reading time from `clock` (tests move it).
    pub async fn build_with_clock(
        args: &ServeArgs,
        clock: Arc<dyn ports::Clock>,
    ) -> Result<Self, StartupError> {
        Self::build_on(args, clock, None).await
    }

    /// As [`Application::build_with_clock`], serving `BIND_ADDR`'s part on `listener`, a
    /// socket the caller has already bound (its address is known before the server starts,
    /// and nobody can take it in between).
    pub async fn build_listening(
        args: &ServeArgs,
        clock: Arc<dyn ports::Clock>,
        listener: std::net::TcpListener,
    ) -> Result<Self, StartupError> {
        Self::build_on(args, clock, Some(listener)).await
    }

    async fn build_on(
        args: &ServeArgs,
        clock: Arc<dyn ports::Clock>,
        listener: Option<std::net::TcpListener>,
    ) -> Result<Self, StartupError> {
        let auth = Arc::new(auth_settings(args)?);
        check_tls(args)?;
        let tls = tls::server_config(&args.tls)?;
        let limiters = api_http::Limiters::new(args.limits.limits()).map_err(ConfigError::from)?;
        refuse_plaintext_window(args)?;
        let (store, report) = connect_with_clock(args, Arc::clone(&clock)).await?;
        check_secrets(&store, args.profile).await?;
        check_audit_key(&store, args.profile).await?;
        let database = store.database().clone();
        let store = Arc::new(store);
        let refusals = Arc::new(api_http::RefusalLog::new(
            store.clone(),
            Arc::clone(&clock),
            args.audit.refusal_window(),
            api_http::DEFAULT_MAX_KINDS,
        ));
        let blocker =
            api_http::Blocker::new(store.clone(), args.blocks.settings(), Arc::clone(&refusals));
        // The blocks in force before the first request: a permanent block outlives restarts.
        let blocked = blocker.refresh().await.map_err(StartupError::Store)?;
        let lifetime = args.login.session_lifetime();
        let store_for_tasks = Arc::clone(&store);
        let login = login_settings(args, store.clone(), Arc::clone(&clock))?;
        let sessions = api_http::SessionSettings {
            store: store.clone(),
            lifetime,
            cookie_key: args.auth.session_cookie_key()?,
        };
        let state = AppState {
            app: app::App::new(
                app::Ports::of(
                    store.clone(),
                    Arc::new(api_http::JwtIssuer(Arc::clone(&auth))),
                ),
                Arc::clone(&clock),
                app::Settings {
                    fresh_login_max_age: auth.fresh_auth_max_age,
                    token_use_resolution: auth.token_use_resolution,
                    session_touch_resolution: SESSION_TOUCH_EVERY,
                },
            ),
            health: Arc::new(api_http::CachedHealth::new(
                store.clone(),
                Arc::clone(&clock),
            )),
            audit_log: store,
            clock,
            blocker,
            refusals: Arc::clone(&refusals),
            sessions,
            login,
            auth,
            cors_allowed_origins: args.browser.cors_origins(args.profile)?.into(),
            limiters,
            max_header_bytes: usize::try_from(args.max_header_bytes)
                .unwrap_or(api_http::DEFAULT_MAX_HEADER_BYTES),
            max_body_bytes: usize::try_from(args.max_body_bytes)
                .unwrap_or(api_http::DEFAULT_MAX_BODY_BYTES),
            proxies: Arc::new(api_http::ProxySettings {
                trusted_proxies: args.browser.trusted_proxies.clone(),
                forwarded_headers: args.browser.forwarded_headers,
                public_url: args
                    .login
                    .public_url
                    .as_deref()
                    .and_then(|url| url::Url::parse(url).ok())
                    .filter(|url| url.scheme() == "https")
                    .map(String::from),
                // In production, and whenever TLS is served here, every request but the health
                // probes must have come over HTTPS: here or through a trusted proxy.
                require_https: args.profile == Profile::Production || tls.is_some(),
            }),
        };
        let use_cases = state.app.clone();
        let background = background(
            use_cases.clone(),
            Arc::clone(&refusals),
            state.limiters.clone(),
            state.blocker.clone(),
            args.blocks.refresh(),
            Arc::clone(&store_for_tasks),
            args,
        );
        let mut server = actix_web::HttpServer::new(move || api_http::app(state.clone()));
        if let Some(workers) = args.workers {
            server = server.workers(workers);
        }
        // SIGTERM (and SIGINT) stop the listeners at once and give the requests in flight
        // this long; then the workers stop, whatever is still running. The signals are ours
        // (`stop_on_signals`): actix's own would cut the requests at a SIGINT and ignore a
        // second signal.
        server = server
            .shutdown_timeout(args.shutdown_grace_seconds)
            .disable_signals();
        let server = match (tls, listener) {
            (Some(config), Some(listener)) => server.listen_rustls_0_23(listener, config),
            (Some(config), None) => server.bind_rustls_0_23(args.bind, config),
            (None, Some(listener)) => server.listen(listener),
            (None, None) => server.bind(args.bind),
        }
        .map_err(StartupError::Bind)?;
        let port = server.addrs().first().map_or(0, |a| a.port());
        let (server, http_port) = match args.tls.http_bind {
            Some(addr) => {
                let server = server.bind(addr).map_err(StartupError::Bind)?;
                let http_port = server.addrs().get(1).map(|a| a.port());
                (server, http_port)
            }
            None => (server, None),
        };
        let metrics = args
            .metrics_bind
            .map(|addr| metrics::serve(addr, Some(database.clone())))
            .transpose()?;
        tracing::info!(profile = ?args.profile, port, ?http_port, role = %report.role,
            blocked, "listening");
        let signals = StopSignals::listen()?;
        let server = server.run();
        let (forced, stop_forced) = tokio::sync::watch::channel(false);
        tokio::spawn(stop_on_signals(signals, server.handle(), forced));
        Ok(Self {
            port,
            http_port,
            server,
            stop_forced,
            refusals,
            use_cases,
            database,
            metrics,
            background,
        })
    }

    /// The port of the metrics listener, if `METRICS_BIND_ADDR` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|m| m.port)
    }

    /// The port of `BIND_ADDR` (HTTPS when TLS is configured).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the plain-HTTP listener next to a TLS one, if any.
    pub fn http_port(&self) -> Option<u16> {
        self.http_port
    }

    /// The refusals counted and not yet recorded (tests record them at once).
    pub fn refusals(&self) -> Arc<api_http::RefusalLog> {
        Arc::clone(&self.refusals)
    }

    /// The use cases (tests write the noted token uses at once).
    pub fn use_cases(&self) -> app::App {
        self.use_cases.clone()
    }

    /// Serves until the process is asked to stop (SIGTERM or SIGINT): the listeners close at
    /// once, the requests in flight get `SHUTDOWN_GRACE_SECONDS`. Then the background tasks
    /// finish their round and end, the refusals still being counted and the token and session
    /// uses still noted are recorded and the database pool is closed, within
    /// [`STOP_WRITES_WITHIN`]; a second signal ends the wait at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server,
            refusals,
            use_cases,
            database,
            metrics,
            background,
            mut stop_forced,
            ..
        } = self;
        let forced_message = "a second signal: stopping at once; counted refusals and noted uses \
                              not yet written are lost";
        let mut forced = async move || {
            // Only a second signal; a sender gone without one (never, while the process
            // runs) is no reason to stop.
            if stop_forced.wait_for(|forced| *forced).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let served = tokio::select! {
            served = server => served,
            () = forced() => {
                tracing::error!("{forced_message}");
                return Ok(());
            }
        };
        let finish = async move {
            background.stop().await;
            let recorded = refusals.flush(true).await;
            let uses = use_cases.record_token_uses().await;
            let touches = use_cases.record_session_touches().await;
            tracing::info!(
                recorded,
                uses,
                touches,
                "counted refusals, token and session uses recorded at the stop"
            );
            if let Some(metrics) = &metrics {
                metrics.server.stop(false).await;
            }
            match database.close().await {
                Ok(()) => tracing::info!("database pool closed"),
                Err(err) => tracing::warn!(error = %err, "the database pool did not close cleanly"),
            }
        };
        tokio::select! {
            finished = tokio::time::timeout(STOP_WRITES_WITHIN, finish) => {
                if finished.is_err() {
                    tracing::error!(within = ?STOP_WRITES_WITHIN,
                        "the stop's writes did not finish in time (is the database reachable?); \
                         counted refusals and noted uses not yet written are lost");
                }
            }
            () = forced() => tracing::error!("{forced_message}"),
        }
        served
    }
}
