//! The traits the core needs from the world.
//!
//! Tenant data is reachable only through a [`UnitOfWork`] opened for a [`TenantScope`], and a
//! `TenantScope` is only built from an authenticated principal. What must cross tenants
//! (finding a user by the identity provider's subject, a pending invitation by e-mail) goes
//! through the narrow [`IdentityDirectory`], whose methods are all named `unscoped_…`.

mod audit;
mod blocks;
mod clock;
mod error;
mod identity;
mod issuer;
mod list;
mod login;
mod principal;
mod secrets;
mod stores;

pub use audit::{AuditFilter, AuditLog, AuditStore, ChainVerdict, NewAuditEvent};
pub use blocks::{
    BlockContext, BlockEntry, BlockList, describe as describe_block, operator_reason,
};
pub use clock::{Clock, SystemClock};
pub use error::{FoundingError, StoreError};
pub use identity::{
    AccessTokenSubject, IdentityDirectory, NewIdentity, Refusal, RefusalReason, ResolvedApiToken,
    ResolvedUser,
};
pub use issuer::{AccessTokenGrant, AccessTokenIssuer, IssueError};
pub use list::{MAX_PAGE_SIZE, MAX_SKIP, Page, PageRequest, PageRequestError, Sort, SortDirection};
pub use login::{
    IdentityProvider, IdentityProviderError, LoginAttempts, LoginFinish, LoginStart, PendingLogin,
    SessionEnd, SessionLifetime, SessionLookup, SessionStore, StoredSession, VerifiedLogin,
};
pub use principal::TenantScope;
pub use secrets::{
    ApiTokenSort, ApiTokenStore, EndpointCredentials, EndpointPatch, EndpointSort, EndpointStore,
    ModelPatch, ModelSort, ModelStore, NewEndpoint, NewModel, SecretPatch,
};
pub use stores::{
    CREDENTIAL_STALENESS, Claim, Entered, EnteredSession, EnteredToken, Freshness, HealthCheck,
    InvitationError, InvitationSort, InvitationStore, NewOrganization, NewProject,
    OrganizationPatch, OrganizationSort, OrganizationStore, Patch, ProjectPatch, ProjectSort,
    ProjectStore, UnitOfWork, UnitOfWorkFactory, UserSort, UserStore,
};
