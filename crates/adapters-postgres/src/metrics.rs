//! The names of the metrics this adapter records through the `metrics` facade (a no-op
//! until the server installs a recorder). Labels are table and column names, kinds and
//! chains: closed sets.

/// Secrets read from a legacy form inside its migration window, by `kind` (`plaintext`,
/// `unbound`), table and column.
pub const LEGACY_SECRET_READS: &str = "rhesis_secret_legacy_reads_total";
/// Secrets that did not open under any configured key, by table and column.
pub const UNOPENABLE_SECRETS: &str = "rhesis_secret_unopenable_total";
/// Audit events that could not be appended, by chain (`organization`, `system`).
pub const AUDIT_APPEND_FAILURES: &str = "rhesis_audit_append_failures_total";
/// Requests that found no free connection within the acquire timeout.
pub const POOL_ACQUIRE_TIMEOUTS: &str = "rhesis_db_pool_acquire_timeouts_total";
/// Reads the credential cache answered (`answer="hit"`) or left to the database (`"miss"`).
pub const CREDENTIAL_CACHE_ANSWERS: &str = "rhesis_credential_cache_answers_total";
/// Times a credential-cache heartbeat failed or hung, making the cache silent.
pub const CREDENTIAL_CACHE_LAPSES: &str = "rhesis_credential_cache_lapses_total";
