/// What a store can report. Driver and SQL text never travel in here except inside
/// `Unexpected`, whose source is for the log only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist in this tenant (or was soft-deleted). Rows of other tenants are
    /// indistinguishable from rows that do not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken; `what` names the rule (e.g. `users.email`).
    #[error("duplicate {what}")]
    Duplicate { what: &'static str },
    /// A referenced row does not exist in this tenant.
    #[error("reference to a missing {what}")]
    MissingReference { what: &'static str },
    /// A value the store cannot hold (e.g. JSON text that does not parse); `what` names it.
    #[error("invalid {what}")]
    InvalidInput { what: &'static str },
    /// The database refused a row outside the unit of work's tenant (row-level security).
    #[error("row outside the tenant refused by the database")]
    TenantViolation,
    /// The database could not be reached or timed out.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else; the source is logged, never shown to a client.
    #[error("unexpected store error")]
    Unexpected(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why founding an organization failed.
#[derive(Debug, thiserror::Error)]
pub enum FoundingError {
    /// The principal already belongs to an organization; a user belongs to at most one.
    #[error("the user already belongs to an organization")]
    AlreadyMember,
    #[error(transparent)]
    Store(#[from] StoreError),
}
