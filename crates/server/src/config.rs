//! Configuration: command line and environment (the old backend's names keep working), with
//! `*_FILE` variants for every secret. No secret has a default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

/// Where the configuration comes from; the production profile refuses development settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    Development,
    Test,
    Production,
}

#[derive(Debug, Parser)]
#[command(
    name = "rhesis-server",
    version,
    about = "Secure multi-tenant backend of the LLM-testing platform"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API.
    Serve(ServeArgs),
    /// Check the configuration and the database role, then exit.
    CheckConfig(ServeArgs),
    /// Apply or inspect migrations, as the owner role.
    Migrate(MigrateArgs),
    /// Create the development organization, its admin and a project (development only).
    SeedDev(ServeArgs),
    /// Re-encrypt every secret column under the primary key, online and resumably.
    Reencrypt(ReencryptArgs),
    /// Verify the hash chain of every organization's audit log and of the system chain, and
    /// the chain heads witnessed earlier (`--head`).
    AuditVerify(AuditVerifyArgs),
    /// List, add or lift the graduated response's blocks of clients.
    Blocks(BlocksArgs),
}

/// Settings of `audit-verify`.
#[derive(Debug, Clone, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// A chain head witnessed earlier, as the `audit_chain_head` log line's `witness` field
    /// prints it: ORG:SEQ:HASH, ORG an organization id or `system`. Repeatable. Fails when
    /// that chain no longer holds event SEQ with that hash (cut, or rewritten).
    #[arg(long = "head", value_name = "ORG:SEQ:HASH")]
    pub heads: Vec<crate::HeadWitness>,
}

/// Settings of `blocks`.
#[derive(Debug, Clone, Args)]
pub struct BlocksArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub action: BlocksAction,
}

/// What `blocks` does. A key is `ip:<address>`, `token:<api token id>` or `user:<user id>`.
#[derive(Debug, Clone, Subcommand)]
pub enum BlocksAction {
    /// List every client with strikes or blocks, the most recently changed first.
    List,
    /// Block a client for some minutes, or for good.
    Add {
        key: domain::BlockKey,
        /// How long the block lasts.
        #[arg(long, required_unless_present = "permanent",
              value_parser = clap::value_parser!(u32).range(1..=525_600))]
        minutes: Option<u32>,
        /// Block for good, until lifted.
        #[arg(long, conflicts_with = "minutes")]
        permanent: bool,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Lift a client's block and forget its strikes.
    Lift {
        key: domain::BlockKey,
        /// Why, for the audit log.
        #[arg(long)]
        reason: String,
    },
}

fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_owned()))
}

/// Settings of the serving process.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// development, test or production. Production is the default: the safe one.
    #[arg(long, env = "APP_ENV", value_enum, default_value_t = Profile::Production)]
    pub profile: Profile,
    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Worker threads of the HTTP server (default: one per core).
    #[arg(long, env = "HTTP_WORKERS")]
    pub workers: Option<usize>,
    /// The largest request body accepted, in bytes (1 KiB to 10 MiB).
    #[arg(long, env = "HTTP_MAX_BODY_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1024..=10_485_760))]
    pub max_body_bytes: u32,
    /// The largest request head accepted (target and headers), in bytes (1 KiB to 128 KiB);
    /// larger ones get 431.
    #[arg(long, env = "HTTP_MAX_HEADER_BYTES", default_value_t = 16_384,
          value_parser = clap::value_parser!(u32).range(1024..=131_072))]
    pub max_header_bytes: u32,
    /// How long a stop (SIGTERM) waits for the requests in flight, in seconds (0 to 3600):
    /// the listener closes at once, the requests under way are finished, then the database
    /// pool is closed and the process exits 0.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 25,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace_seconds: u64,
    /// Address of the metrics listener (`GET /metrics`, Prometheus text format); off unless
    /// set. Keep it off the public network: it answers without credentials.
    #[arg(long, env = "METRICS_BIND_ADDR")]
    pub metrics_bind: Option<SocketAddr>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub encryption: EncryptionArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub browser: BrowserArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: RateLimitArgs,
    #[command(flatten)]
    pub blocks: BlockArgs,
    #[command(flatten)]
    pub login: LoginArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
    /// Log format: json (default) or pretty.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// Settings of `reencrypt`.
#[derive(Debug, Clone, Args)]
pub struct ReencryptArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Count what would change, per key, without writing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rows per batch (each batch is one short transaction).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The application's database connection (the least-privilege application role).
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL of the application role.
    #[arg(long = "database-url", env = "DATABASE_URL", value_parser = secret, hide_env_values = true)]
    pub url: Option<SecretString>,
    /// A file holding the URL (for container secrets).
    #[arg(long = "database-url-file", env = "DATABASE_URL_FILE")]
    pub url_file: Option<PathBuf>,
    /// Most connections in the pool.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub max_connections: u32,
    /// How long a request waits for a database connection, in milliseconds (50 to 60000),
    /// connecting included: while the database is unreachable, requests get 503 after this
    /// long instead of hanging.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT_MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub acquire_timeout_ms: u64,
    /// PostgreSQL's `statement_timeout` for the server's connections, in milliseconds (100
    /// to 600000): a statement stuck longer (on a lock, say) is cancelled and its request
    /// answered 503.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub statement_timeout_ms: u64,
    /// CA certificates (PEM) the database server's certificate must chain to, for
    /// `sslmode=verify-full` (instead of the URL's `sslrootcert`).
    #[arg(long, env = "DATABASE_SSL_ROOT_CERT")]
    pub ssl_root_cert: Option<PathBuf>,
}

impl DatabaseArgs {
    /// [`DatabaseArgs::acquire_timeout_ms`] as a duration.
    pub fn acquire_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.acquire_timeout_ms)
    }
}

/// The CA file a database URL names (`sslrootcert`, or the driver's other spellings of it),
/// if it names one.
pub fn url_root_cert(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    url.query_pairs()
        .filter(|(key, _)| ROOT_CERT_PARAMETERS.contains(&key.as_ref()))
        .last()
        .map(|(_, value)| value.into_owned())
}

/// The driver's names of the CA file parameter.
pub const ROOT_CERT_PARAMETERS: [&str; 3] = ["sslrootcert", "ssl-root-cert", "ssl-ca"];

/// Encryption of the secret columns.
#[derive(Debug, Clone, Args)]
pub struct EncryptionArgs {
    /// Fernet keys (Python's format), newest first, separated by commas.
    #[arg(long = "db-encryption-key", env = "DB_ENCRYPTION_KEY", value_parser = secret, hide_env_values = true)]
    pub key: Option<SecretString>,
    /// A file holding the keys.
    #[arg(long = "db-encryption-key-file", env = "DB_ENCRYPTION_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// RFC 3339 instant until which legacy plaintext in secret columns may still be read
    /// (never in production).
    #[arg(long, env = "DB_ENCRYPTION_PLAINTEXT_UNTIL")]
    pub plaintext_until: Option<chrono::DateTime<chrono::Utc>>,
    /// RFC 3339 instant until which bare Fernet tokens bound to no place (as the Python
    /// backend wrote them) may still be read, while `reencrypt` binds them; in production at
    /// most 90 days ahead.
    #[arg(long, env = "DB_ENCRYPTION_UNBOUND_UNTIL")]
    pub unbound_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The longest unbound-token window production accepts, from the start of the process.
pub const MAX_UNBOUND_WINDOW: chrono::Duration = chrono::Duration::days(90);

impl EncryptionArgs {
    /// The field cipher: the key ring and the legacy windows.
    pub fn cipher(&self) -> Result<crypto::FieldCipher, ConfigError> {
        const VAR: &str = "DB_ENCRYPTION_KEY";
        let keys = resolve_secret(VAR, self.key.as_ref(), self.key_file.as_ref())?
            .ok_or(ConfigError::Missing(VAR))?;
        let ring = crypto::KeyRing::parse(VAR, &keys)?;
        Ok(crypto::FieldCipher::new(ring, self.plaintext_until)
            .with_unbound_until(self.unbound_until))
    }
}

/// The backend's access tokens and fresh authentication.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// The HS256 signing key of access tokens: at least 32 bytes.
    #[arg(long = "jwt-secret-key", env = "JWT_SECRET_KEY", value_parser = secret, hide_env_values = true)]
    pub jwt_key: Option<SecretString>,
    #[arg(long = "jwt-secret-key-file", env = "JWT_SECRET_KEY_FILE")]
    pub jwt_key_file: Option<PathBuf>,
    /// The previous signing key, still accepted (by its `kid`) during a rotation.
    #[arg(long = "jwt-previous-secret-key", env = "JWT_PREVIOUS_SECRET_KEY", value_parser = secret, hide_env_values = true)]
    pub jwt_previous_key: Option<SecretString>,
    #[arg(
        long = "jwt-previous-secret-key-file",
        env = "JWT_PREVIOUS_SECRET_KEY_FILE"
    )]
    pub jwt_previous_key_file: Option<PathBuf>,
    /// Lifetime of an access token, in minutes.
    #[arg(long, env = "JWT_ACCESS_TOKEN_EXPIRE_MINUTES", default_value_t = 15,
          value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub jwt_expire_minutes: u32,
    /// The `iss` of access tokens.
    #[arg(long, env = "JWT_ISSUER", default_value = "rhesis-backend")]
    pub jwt_issuer: String,
    /// The `aud` of access tokens.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "rhesis-api")]
    pub jwt_audience: String,
    /// The oldest login, in seconds, that sensitive operations accept.
    #[arg(long, env = "FRESH_AUTH_MAX_AGE", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub fresh_auth_max_age: u32,
}

impl AuthArgs {
    /// The access-token authority: refuses a missing or short key, and in production one with
    /// too little variety.
    pub fn jwt(&self, profile: Profile) -> Result<crypto::JwtAuthority, ConfigError> {
        const VAR: &str = "JWT_SECRET_KEY";
        const PREVIOUS: &str = "JWT_PREVIOUS_SECRET_KEY";
        let current = resolve_secret(VAR, self.jwt_key.as_ref(), self.jwt_key_file.as_ref())?
            .ok_or(ConfigError::Missing(VAR))?;
        let previous = resolve_secret(
            PREVIOUS,
            self.jwt_previous_key.as_ref(),
            self.jwt_previous_key_file.as_ref(),
        )?;
        let authority = crypto::JwtAuthority::new(
            &current,
            previous.as_ref(),
            &self.jwt_issuer,
            &self.jwt_audience,
            chrono::Duration::minutes(i64::from(self.jwt_expire_minutes)),
        )?;
        if profile == Profile::Production {
            crypto::check_key_variety(VAR, &current)?;
            if let Some(previous) = &previous {
                crypto::check_key_variety(PREVIOUS, previous)?;
            }
        }
        Ok(authority)
    }

    /// The key that encrypts the session cookie: derived from the signing key (HKDF), so
    /// rotating `JWT_SECRET_KEY` also ends browser sessions.
    pub fn session_cookie_key(&self) -> Result<actix_web::cookie::Key, ConfigError> {
        const VAR: &str = "JWT_SECRET_KEY";
        let secret = resolve_secret(VAR, self.jwt_key.as_ref(), self.jwt_key_file.as_ref())?
            .ok_or(ConfigError::Missing(VAR))?;
        crypto::derive_subkey(secret.expose_secret().as_bytes(), "rhesis session cookie")
            .and_then(|bytes| actix_web::cookie::Key::try_from(&bytes[..]).ok())
            .ok_or(ConfigError::Login(
                "the session cookie key could not be derived",
            ))
    }

    pub fn fresh_auth_max_age(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.fresh_auth_max_age))
    }
}

/// The audit chain: the key of its links, and how often `serve` logs its heads.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// The key of the audit chain's links (HMAC-SHA256): at least 32 bytes. Never stored in
    /// the database; every command that connects needs it.
    #[arg(long = "audit-chain-key", env = "AUDIT_CHAIN_KEY", value_parser = secret, hide_env_values = true)]
    pub chain_key: Option<SecretString>,
    /// A file holding the key.
    #[arg(long = "audit-chain-key-file", env = "AUDIT_CHAIN_KEY_FILE")]
    pub chain_key_file: Option<PathBuf>,
    /// How often `serve` logs the head of each audit chain that moved, in seconds (every
    /// chain's head is logged once at start).
    #[arg(long, env = "AUDIT_HEAD_LOG_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub head_log_seconds: u32,
    /// Refused credentials and failed logins are counted per kind, client address and
    /// window of this many seconds, and each count recorded as one event when its window
    /// closes.
    #[arg(long, env = "AUDIT_REFUSAL_WINDOW_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=3_600))]
    pub refusal_window_seconds: u32,
}

impl AuditArgs {
    /// The audit chain key: refuses a missing or short one, and in production one with too
    /// little variety or that a person typed (the signing keys' rule).
    pub fn key(&self, profile: Profile) -> Result<crypto::AuditChainKey, ConfigError> {
        const VAR: &str = "AUDIT_CHAIN_KEY";
        let secret = resolve_secret(VAR, self.chain_key.as_ref(), self.chain_key_file.as_ref())?
            .ok_or(ConfigError::Missing(VAR))?;
        let key = crypto::AuditChainKey::new(VAR, &secret)?;
        if profile == Profile::Production {
            crypto::AuditChainKey::check_variety(VAR, &secret)?;
        }
        Ok(key)
    }

    /// How often the chain heads are logged.
    pub fn head_log_every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.head_log_seconds))
    }

    /// The window refusals are counted over.
    pub fn refusal_window(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.refusal_window_seconds))
    }
}

/// Request budgets per client address, in requests per minute; 0 switches a tier off.
#[derive(Debug, Clone, Copy, Args)]
pub struct RateLimitArgs {
    /// Every request of one address.
    #[arg(long, env = "RATE_LIMIT_PER_IP_PER_MINUTE", default_value_t = 1200,
          value_parser = clap::value_parser!(u32).range(0..=6_000_000))]
    pub per_ip_per_minute: u32,
    /// Requests of one address without credentials.
    #[arg(long, env = "RATE_LIMIT_ANONYMOUS_PER_MINUTE", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(0..=6_000_000))]
    pub anonymous_per_minute: u32,
    /// Requests of one credential (an API token, or a user's access tokens).
    #[arg(long, env = "RATE_LIMIT_AUTHENTICATED_PER_MINUTE", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(0..=6_000_000))]
    pub authenticated_per_minute: u32,
    /// Requests of one address to the login routes (`/auth/…`).
    #[arg(long, env = "RATE_LIMIT_AUTH_PER_MINUTE", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(0..=6_000_000))]
    pub auth_per_minute: u32,
}

impl RateLimitArgs {
    pub fn limits(&self) -> api_http::RateLimits {
        api_http::RateLimits {
            per_ip: std::num::NonZeroU32::new(self.per_ip_per_minute),
            anonymous: std::num::NonZeroU32::new(self.anonymous_per_minute),
            auth_routes: std::num::NonZeroU32::new(self.auth_per_minute),
            authenticated: std::num::NonZeroU32::new(self.authenticated_per_minute),
        }
    }
}

/// The graduated response: requests over a budget and guessed credentials are strikes; enough
/// strikes within a window block the client for a time that doubles with each block; enough
/// blocks, and the next one is permanent.
#[derive(Debug, Clone, Copy, Args)]
pub struct BlockArgs {
    /// Strikes within the window that block a client; 0 counts no strikes (the operator's
    /// blocks still hold).
    #[arg(long, env = "BLOCK_STRIKES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub block_strikes: u32,
    /// The window strikes are counted in, in seconds.
    #[arg(long, env = "BLOCK_STRIKE_WINDOW_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u32).range(1..=604_800))]
    pub block_strike_window_seconds: u32,
    /// How long the first block lasts, in seconds; each further one lasts twice as long.
    #[arg(long, env = "BLOCK_FIRST_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..=2_592_000))]
    pub block_first_seconds: u32,
    /// Temporary blocks after which the next block is permanent.
    #[arg(long, env = "BLOCK_PERMANENT_AFTER", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub block_permanent_after: u32,
    /// How long past blocks count towards a permanent one, in seconds after each ended.
    #[arg(long, env = "BLOCK_MEMORY_SECONDS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u32).range(1..=31_536_000))]
    pub block_memory_seconds: u32,
    /// Strikes against one client closer together than this count once, in milliseconds.
    #[arg(long, env = "BLOCK_STRIKE_INTERVAL_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(0..=60_000))]
    pub block_strike_interval_ms: u32,
    /// How often the blocks set by every replica and the operator are read, in milliseconds.
    #[arg(long, env = "BLOCK_REFRESH_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u32).range(100..=300_000))]
    pub block_refresh_ms: u32,
}

impl BlockArgs {
    /// The settings of the graduated response; `None` when no strikes are counted.
    pub fn settings(&self) -> Option<api_http::BlockSettings> {
        let seconds = |n: u32| chrono::Duration::seconds(i64::from(n));
        (self.block_strikes > 0).then(|| api_http::BlockSettings {
            policy: domain::BlockPolicy {
                strikes_to_block: self.block_strikes,
                strike_window: seconds(self.block_strike_window_seconds),
                first_block: seconds(self.block_first_seconds),
                blocks_to_ban: self.block_permanent_after,
                block_memory: seconds(self.block_memory_seconds),
            },
            strike_interval: std::time::Duration::from_millis(u64::from(
                self.block_strike_interval_ms,
            )),
        })
    }

    /// How often the block cache is refreshed.
    pub fn refresh(&self) -> std::time::Duration {
        std::time::Duration::from_millis(u64::from(self.block_refresh_ms))
    }
}

/// Browser login through Auth0 or any OpenID Connect provider, and browser sessions.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Auth0 tenant domain (`tenant.eu.auth0.com`); the issuer is then `https://<domain>/`.
    #[arg(long, env = "AUTH0_DOMAIN")]
    pub auth0_domain: Option<String>,
    /// Any other OpenID Connect provider: its issuer URL, exactly as its tokens name it.
    #[arg(long, env = "OIDC_ISSUER_URL", conflicts_with = "auth0_domain")]
    pub oidc_issuer_url: Option<String>,
    /// The client id registered at the provider.
    #[arg(long, env = "AUTH0_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// The client secret registered at the provider.
    #[arg(long, env = "AUTH0_CLIENT_SECRET", value_parser = secret, hide_env_values = true)]
    pub oidc_client_secret: Option<SecretString>,
    /// A file holding the client secret.
    #[arg(long, env = "AUTH0_CLIENT_SECRET_FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,
    /// Auth0: the API the access tokens are for.
    #[arg(long, env = "AUTH0_AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// Auth0 Organizations: the organization (`org_…`) to log in to; ID tokens must name it.
    #[arg(long, env = "AUTH0_ORGANIZATION")]
    pub oidc_organization: Option<String>,
    /// This server's public URL (`https://api.example.com`); the provider sends browsers back
    /// to `<PUBLIC_URL>/auth/callback`.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Minutes a browser session may go unused.
    #[arg(long, env = "SESSION_IDLE_MINUTES", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=1_440))]
    pub session_idle_minutes: u32,
    /// Hours a browser session lasts at most, however used.
    #[arg(long, env = "SESSION_ABSOLUTE_HOURS", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(1..=720))]
    pub session_absolute_hours: u32,
}

/// Where the identity provider is, when one is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    pub url: String,
    pub auth0: bool,
}

impl LoginArgs {
    /// The provider's issuer: `https://<AUTH0_DOMAIN>/`, or `OIDC_ISSUER_URL` as given;
    /// `None` when login is not configured.
    pub fn issuer(&self) -> Result<Option<Issuer>, ConfigError> {
        if let Some(domain) = &self.auth0_domain {
            let domain = domain
                .trim()
                .trim_start_matches("https://")
                .trim_end_matches('/');
            if domain.is_empty() || domain.contains(['/', '?', '#', '@', ' ']) {
                return Err(ConfigError::Login(
                    "AUTH0_DOMAIN is a host name, such as tenant.eu.auth0.com",
                ));
            }
            return Ok(Some(Issuer {
                url: format!("https://{domain}/"),
                auth0: true,
            }));
        }
        Ok(self.oidc_issuer_url.as_ref().map(|url| Issuer {
            url: url.trim().to_owned(),
            auth0: false,
        }))
    }

    /// The client secret, from its variable or file.
    pub fn client_secret(&self) -> Result<SecretString, ConfigError> {
        const VAR: &str = "AUTH0_CLIENT_SECRET";
        resolve_secret(
            VAR,
            self.oidc_client_secret.as_ref(),
            self.oidc_client_secret_file.as_ref(),
        )?
        .ok_or(ConfigError::Missing(VAR))
    }

    pub fn session_lifetime(&self) -> ports::SessionLifetime {
        ports::SessionLifetime {
            idle: chrono::Duration::minutes(i64::from(self.session_idle_minutes)),
            absolute: chrono::Duration::hours(i64::from(self.session_absolute_hours)),
        }
    }
}

/// TLS terminated by the server itself.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM certificate chain; with TLS_KEY_FILE, BIND_ADDR serves HTTPS only.
    #[arg(long = "tls-cert-file", env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long = "tls-key-file", env = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// With TLS: a plain-HTTP address that redirects browsers to HTTPS and refuses API calls.
    #[arg(long = "http-bind-addr", env = "HTTP_BIND_ADDR")]
    pub http_bind: Option<SocketAddr>,
}

/// Where browsers come from.
#[derive(Debug, Clone, Args)]
pub struct BrowserArgs {
    /// The frontend's URL; its origin is allowed by CORS unless CORS_ALLOWED_ORIGINS says
    /// otherwise.
    #[arg(long, env = "FRONTEND_URL")]
    pub frontend_url: Option<String>,
    /// Origins allowed to call the API from a browser, with credentials, comma-separated
    /// (`https://app.example.com`). `*` is refused.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-*` headers are believed: addresses or
    /// CIDRs, comma-separated. Nobody's by default.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one header family the trusted proxies write: `x-forwarded` (X-Forwarded-For and
    /// X-Forwarded-Proto) or `forwarded` (RFC 7239). The other family is a client's own
    /// writing and is ignored.
    #[arg(long, env = "FORWARDED_HEADERS", default_value = "x-forwarded",
          value_parser = parse_forwarded_headers)]
    pub forwarded_headers: api_http::ForwardedHeaders,
}

fn parse_forwarded_headers(text: &str) -> Result<api_http::ForwardedHeaders, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "x-forwarded" => Ok(api_http::ForwardedHeaders::XForwarded),
        "forwarded" => Ok(api_http::ForwardedHeaders::Forwarded),
        _ => Err("`x-forwarded` or `forwarded`".to_owned()),
    }
}

/// An address (`10.0.0.7`) or a network (`10.0.0.0/8`).
fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| "an IP address or CIDR network, e.g. 10.0.0.0/8".to_owned())
}

/// An origin (`scheme://host[:port]`) from configuration: http or https, nothing after the
/// host but an optional `/`, no credentials. HTTPS only in production.
pub fn parse_origin(
    var: &'static str,
    text: &str,
    profile: Profile,
) -> Result<String, ConfigError> {
    let bad = || ConfigError::Origin { var };
    let text = text.trim();
    if text == "*" {
        return Err(ConfigError::WildcardOrigin(var));
    }
    let url = url::Url::parse(text).map_err(|_| bad())?;
    // No plain-HTTP origin in production, loopback included: a page on the user's own machine
    // (any local program that serves one) would get credentialed CORS and pass the CSRF check.
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => profile != Profile::Production,
        _ => false,
    };
    let plain_host = match url.host() {
        Some(url::Host::Domain(domain)) => domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'),
        Some(_) => true,
        None => false,
    };
    if !scheme_ok
        || !plain_host
        || !url.username().is_empty()
        || url.password().is_some()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(bad());
    }
    Ok(url.origin().ascii_serialization())
}

impl BrowserArgs {
    /// The origins CORS allows: the configured list, else the frontend's origin, else none.
    pub fn cors_origins(&self, profile: Profile) -> Result<Vec<String>, ConfigError> {
        const VAR: &str = "CORS_ALLOWED_ORIGINS";
        let listed: Vec<&str> = self
            .cors_allowed_origins
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if listed.is_empty() {
            return self
                .frontend_url
                .as_deref()
                .map(|url| parse_origin("FRONTEND_URL", url, profile))
                .into_iter()
                .collect();
        }
        listed
            .into_iter()
            .map(|origin| parse_origin(VAR, origin, profile))
            .collect()
    }
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[arg(value_enum)]
    pub action: MigrateAction,
    /// PostgreSQL URL of the owner role; falls back to DATABASE_URL.
    #[arg(long, env = "MIGRATION_DATABASE_URL", value_parser = secret, hide_env_values = true)]
    pub migration_database_url: Option<SecretString>,
    #[arg(long, env = "MIGRATION_DATABASE_URL_FILE")]
    pub migration_database_url_file: Option<PathBuf>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[arg(long, env = "APP_ENV", value_enum, default_value_t = Profile::Production)]
    pub profile: Profile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the last applied migration.
    Down,
    /// List applied and pending migrations.
    Status,
    /// Revert everything and apply again (never in production).
    Fresh,
}

/// A configuration that cannot be used. Messages name variables, never values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required (or {0}_FILE)")]
    Missing(&'static str),
    #[error("set {0} or {0}_FILE, not both")]
    Ambiguous(&'static str),
    #[error("{name}_FILE could not be read")]
    File {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error(transparent)]
    KeyRing(#[from] crypto::KeyRingError),
    #[error(transparent)]
    JwtKey(#[from] crypto::JwtKeyError),
    #[error(transparent)]
    AuditKey(#[from] crypto::AuditKeyError),
    #[error(
        "{var} holds a value that is not an origin (scheme://host[:port], https in \
         production)"
    )]
    Origin { var: &'static str },
    #[error("{0} may not be `*`: credentials are allowed for the listed origins only")]
    WildcardOrigin(&'static str),
    #[error("set both TLS_CERT_FILE and TLS_KEY_FILE, or neither")]
    TlsIncomplete,
    #[error("{var} {problem}")]
    Tls {
        var: &'static str,
        problem: &'static str,
    },
    #[error("HTTP_BIND_ADDR needs TLS_CERT_FILE and TLS_KEY_FILE")]
    PlainListenerWithoutTls,
    #[error(transparent)]
    RateLimit(#[from] api_http::InvalidRateLimit),
    #[error("{0}")]
    Login(&'static str),
    #[error("{0} is required for browser login")]
    LoginUnset(&'static str),
}

/// A secret from its variable or from the file its `_FILE` variant names.
pub fn resolve_secret(
    name: &'static str,
    value: Option<&SecretString>,
    file: Option<&PathBuf>,
) -> Result<Option<SecretString>, ConfigError> {
    let secret = match (value, file) {
        (Some(_), Some(_)) => return Err(ConfigError::Ambiguous(name)),
        (Some(value), None) => value.clone(),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::File { name, source })?;
            SecretString::from(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        (None, None) => return Ok(None),
    };
    if secret.expose_secret().trim().is_empty() {
        return Err(ConfigError::Empty(name));
    }
    Ok(Some(secret))
}

impl DatabaseArgs {
    /// The application role's URL.
    pub fn url(&self) -> Result<SecretString, ConfigError> {
        resolve_secret("DATABASE_URL", self.url.as_ref(), self.url_file.as_ref())?
            .ok_or(ConfigError::Missing("DATABASE_URL"))
    }
}

impl MigrateArgs {
    /// The owner role's URL: MIGRATION_DATABASE_URL, else DATABASE_URL.
    pub fn url(&self) -> Result<SecretString, ConfigError> {
        match resolve_secret(
            "MIGRATION_DATABASE_URL",
            self.migration_database_url.as_ref(),
            self.migration_database_url_file.as_ref(),
        )? {
            Some(url) => Ok(url),
            None => self.database.url(),
        }
    }

    /// The variable [`MigrateArgs::url`] comes from, for messages.
    pub fn url_variable(&self) -> &'static str {
        if self.migration_database_url.is_some() || self.migration_database_url_file.is_some() {
            "MIGRATION_DATABASE_URL"
        } else {
            "DATABASE_URL"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth0_issuer_is_its_domain_with_the_trailing_slash() {
        let login = |domain: Option<&str>, issuer: Option<&str>| {
            Cli::try_parse_from(
                ["rhesis-server", "check-config"]
                    .into_iter()
                    .chain(domain.map(|d| ["--auth0-domain", d]).into_iter().flatten())
                    .chain(
                        issuer
                            .map(|i| ["--oidc-issuer-url", i])
                            .into_iter()
                            .flatten(),
                    ),
            )
            .map(|cli| match cli.command {
                Command::CheckConfig(args) => args.login.issuer(),
                _ => unreachable!(),
            })
        };
        for domain in [
            "tenant.eu.auth0.com",
            "https://tenant.eu.auth0.com/",
            " tenant.eu.auth0.com",
        ] {
            assert_eq!(
                login(Some(domain), None).unwrap().unwrap(),
                Some(Issuer {
                    url: "https://tenant.eu.auth0.com/".to_owned(),
                    auth0: true
                }),
                "{domain}"
            );
        }
        for bad in [
            "",
            "tenant.auth0.com/x",
            "evil.example@tenant.auth0.com",
            "a b",
        ] {
            assert!(login(Some(bad), None).unwrap().is_err(), "{bad:?}");
        }
        assert_eq!(
            login(None, Some("https://login.example.com/realms/x"))
                .unwrap()
                .unwrap(),
            Some(Issuer {
                url: "https://login.example.com/realms/x".to_owned(),
                auth0: false
            })
        );
        assert_eq!(login(None, None).unwrap().unwrap(), None);
        assert!(
            login(Some("t.auth0.com"), Some("https://x.example")).is_err(),
            "not both"
        );
    }

    #[test]
    fn secrets_come_from_one_place_and_are_never_empty() {
        let value = SecretString::from("postgres://a:b@h/d".to_owned());
        let dir = std::env::temp_dir().join(format!("rh-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("url");
        std::fs::write(&file, "postgres://from-file\n").unwrap();

        let got = resolve_secret("DATABASE_URL", Some(&value), None)
            .unwrap()
            .unwrap();
        assert_eq!(got.expose_secret(), "postgres://a:b@h/d");
        let got = resolve_secret("DATABASE_URL", None, Some(&file))
            .unwrap()
            .unwrap();
        assert_eq!(
            got.expose_secret(),
            "postgres://from-file",
            "the trailing newline is dropped"
        );
        assert!(
            resolve_secret("DATABASE_URL", None, None)
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            resolve_secret("DATABASE_URL", Some(&value), Some(&file)),
            Err(ConfigError::Ambiguous("DATABASE_URL"))
        ));
        let missing = dir.join("absent");
        assert!(matches!(
            resolve_secret("DATABASE_URL", None, Some(&missing)),
            Err(ConfigError::File {
                name: "DATABASE_URL",
                ..
            })
        ));
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(
            resolve_secret("DATABASE_URL", None, Some(&file)),
            Err(ConfigError::Empty("DATABASE_URL"))
        ));
        let blank = SecretString::from("  ".to_owned());
        assert!(matches!(
            resolve_secret("DATABASE_URL", Some(&blank), None),
            Err(ConfigError::Empty(_))
        ));
        // Messages name the variable, never the value.
        let message = ConfigError::Ambiguous("DATABASE_URL").to_string();
        assert!(!message.contains("postgres://"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_default_profile_is_production() {
        let cli = Cli::try_parse_from(["rhesis-server", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve expected")
        };
        // APP_ENV may be set by the environment running the tests; only check without it.
        if std::env::var_os("APP_ENV").is_none() {
            assert_eq!(args.profile, Profile::Production);
        }
    }

    #[test]
    fn the_audit_chain_key_is_required_long_enough_and_from_one_place() {
        let args = |key: Option<&str>, file: Option<PathBuf>| AuditArgs {
            chain_key: key.map(|k| SecretString::from(k.to_owned())),
            chain_key_file: file,
            head_log_seconds: 300,
            refusal_window_seconds: 60,
        };
        assert!(matches!(
            args(None, None).key(Profile::Test),
            Err(ConfigError::Missing("AUDIT_CHAIN_KEY"))
        ));
        let short = args(Some("k3y-short-but-secret"), None)
            .key(Profile::Test)
            .unwrap_err();
        assert_eq!(
            short.to_string(),
            "AUDIT_CHAIN_KEY must be at least 32 bytes"
        );
        let key = "an-audit-chain-key-of-at-least-32-bytes";
        assert!(args(Some(key), None).key(Profile::Test).is_ok());
        let dir = std::env::temp_dir().join(format!("rh-audit-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, format!("{key}\n")).unwrap();
        assert!(args(None, Some(file.clone())).key(Profile::Test).is_ok());
        assert!(matches!(
            args(Some(key), Some(file)).key(Profile::Test),
            Err(ConfigError::Ambiguous("AUDIT_CHAIN_KEY"))
        ));
        assert!(!format!("{:?}", args(Some(key), None)).contains(key));
        std::fs::remove_dir_all(&dir).unwrap();

        // Production: keys a person types are refused, naming the variable only; a random
        // key passes.
        for typed in [
            "0123456789abcdef0123456789abcdef",
            "changeme-changeme-changeme-changeme",
            "Password123!Password123!Password123!",
            "qwertyuiopasdfghjklzxcvbnm1234567890",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            let refused = args(Some(typed), None)
                .key(Profile::Production)
                .unwrap_err()
                .to_string();
            assert!(
                refused.starts_with("AUDIT_CHAIN_KEY is guessable"),
                "{typed}: {refused}"
            );
            assert!(!refused.contains(typed));
            assert!(
                args(Some(typed), None).key(Profile::Test).is_ok(),
                "{typed}"
            );
        }
        let random = test_support::random_fernet_key();
        assert!(args(Some(&random), None).key(Profile::Production).is_ok());
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let args = DatabaseArgs {
            url: Some(SecretString::from("postgres://app:hunter2@db/x".to_owned())),
            url_file: None,
            max_connections: 1,
            acquire_timeout_ms: 3000,
            statement_timeout_ms: 30_000,
            ssl_root_cert: None,
        };
        assert!(!format!("{args:?}").contains("hunter2"));
    }

    #[test]
    fn origins_are_exact_and_never_a_wildcard() {
        let dev = Profile::Development;
        let prod = Profile::Production;
        assert_eq!(
            parse_origin("V", "https://App.Example.com/", prod).unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            parse_origin("V", "https://app.example.com:8443", prod).unwrap(),
            "https://app.example.com:8443"
        );
        assert_eq!(
            parse_origin("V", "http://localhost:3000", dev).unwrap(),
            "http://localhost:3000"
        );
        assert!(parse_origin("V", "http://app.example.com", dev).is_ok());
        assert!(matches!(
            parse_origin("V", "*", dev),
            Err(ConfigError::WildcardOrigin("V"))
        ));
        for bad in [
            "http://app.example.com",
            "http://localhost:3000",
            "http://127.0.0.1:3000",
            "http://[::1]:3000",
            "app.example.com",
            "https://app.example.com/path",
            "https://app.example.com/?q=1",
            "https://user:pw@app.example.com",
            "ftp://app.example.com",
            "https://*.example.com",
            "",
        ] {
            assert!(
                matches!(
                    parse_origin("V", bad, prod),
                    Err(ConfigError::Origin { var: "V" })
                ),
                "{bad}"
            );
        }
        let browser = BrowserArgs {
            frontend_url: Some("https://app.example.com/login".to_owned()),
            cors_allowed_origins: vec![],
            trusted_proxies: vec![],
            forwarded_headers: api_http::ForwardedHeaders::XForwarded,
        };
        assert!(
            browser.cors_origins(prod).is_err(),
            "a frontend URL with a path is refused"
        );
        let browser = BrowserArgs {
            frontend_url: Some("https://app.example.com".to_owned()),
            cors_allowed_origins: vec![],
            trusted_proxies: vec![],
            forwarded_headers: api_http::ForwardedHeaders::XForwarded,
        };
        assert_eq!(
            browser.cors_origins(prod).unwrap(),
            ["https://app.example.com"]
        );
        let browser = BrowserArgs {
            frontend_url: Some("https://app.example.com".to_owned()),
            cors_allowed_origins: vec![
                "https://a.example".to_owned(),
                " https://b.example ".to_owned(),
            ],
            trusted_proxies: vec![],
            forwarded_headers: api_http::ForwardedHeaders::XForwarded,
        };
        assert_eq!(
            browser.cors_origins(prod).unwrap(),
            ["https://a.example", "https://b.example"]
        );
    }
}
