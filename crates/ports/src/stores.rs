use async_trait::async_trait;
use domain::{
    Description, Email, HttpUrl, Invitation, InvitationId, Membership, Name, Organization,
    OrganizationId, Project, ProjectId, Role, User, UserId,
};

use crate::{FoundingError, Page, PageRequest, StoreError, TenantScope};

/// A field of an update: left as it is, or set to a new value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Keep,
    Set(T),
}

impl<T> Patch<T> {
    pub fn apply_to(self, slot: &mut T) {
        if let Self::Set(value) = self {
            *slot = value;
        }
    }
}

/// Opens units of work. One unit of work is one database transaction bound to one tenant.
#[async_trait]
pub trait UnitOfWorkFactory: Send + Sync + std::fmt::Debug {
    /// Opens a unit of work for `scope`. Everything done through it sees and writes only the
    /// scope's organization; dropping it without [`UnitOfWork::commit`] rolls it back.
    async fn begin(&self, scope: &TenantScope) -> Result<Box<dyn UnitOfWork>, StoreError>;

    /// Opens a transaction whose first statement checks `claim` against what the store holds
    /// of its user now (active, current membership and role; for an access token, whether it
    /// or its session was revoked) and, in the same statement, sets the tenant to the user's
    /// organization. `work` is the unit of work of that tenant, present only when the user is
    /// active, in an organization, and (for an access token) not revoked; the caller MUST
    /// use it only for a principal built from `subject`. With [`Freshness::Recent`] the
    /// check may be answered from what the store held at most [`CREDENTIAL_STALENESS`] ago,
    /// and the transaction then only sets the tenant.
    async fn begin_claimed(
        &self,
        claim: Claim,
        freshness: Freshness,
    ) -> Result<Entered, StoreError>;

    /// Authenticates a presented API token in the first statement of a transaction: found by
    /// its digest, in the same statement the tenant set to the token's organization; then
    /// opened in its row, equal in constant time, not expired, its owner active and still in
    /// the token's organization. MUST return a [`Refusal`] for anything else, the
    /// transaction ended. `work` is that transaction, in the token's organization, for its
    /// owner. [`Freshness`] as for [`UnitOfWorkFactory::begin_claimed`]; a refusal is always
    /// the store's answer now.
    async fn begin_api_token(
        &self,
        presented: &secrecy::SecretString,
        freshness: Freshness,
    ) -> Result<Result<EnteredToken, crate::Refusal>, StoreError>;

    /// Loads the browser session under `id_hash` (as [`crate::SessionStore::load`] does: an
    /// ended session is reported and forgotten) in the first statement of a transaction that
    /// also reads the session's user as they are now (active, membership, role) and, in the
    /// same statement, sets the tenant to the user's organization. `work` is that transaction,
    /// present only for a live session whose user is active and in an organization; the
    /// caller MUST use it only for a principal built from `user`. [`Freshness`] as for
    /// [`UnitOfWorkFactory::begin_claimed`]; a session that ended is always the store's
    /// answer now.
    async fn begin_session(
        &self,
        id_hash: [u8; 32],
        lifetime: crate::SessionLifetime,
        freshness: Freshness,
    ) -> Result<EnteredSession, StoreError>;

    /// Creates an organization for an authenticated user who has none, makes them its owner
    /// and records `event` as the first of its audit log, in one transaction. MUST return
    /// `AlreadyMember` if the user belongs to an organization (as the store says now), and
    /// MUST found nothing for a user who is disabled (also `AlreadyMember`: the request's
    /// credential was checked again just before, so only a disabling in between gets here).
    async fn found_organization(
        &self,
        founder: UserId,
        new: NewOrganization,
        event: crate::NewAuditEvent,
    ) -> Result<Organization, FoundingError>;

    /// The authenticated `invitee` joins the organization of `invitation`, which MUST be
    /// pending, addressed to the invitee's verified e-mail address and unexpired (`NotFound` otherwise, the
    /// same for an invitation of someone else), and records `event` in that organization's
    /// audit log, in one transaction; the invitation is used up.
    async fn accept_invitation(
        &self,
        invitee: UserId,
        invitation: InvitationId,
        event: crate::NewAuditEvent,
    ) -> Result<Membership, InvitationError>;

    /// The authenticated `invitee` declines `invitation` (as for accepting, only their own): it is removed
    /// and `event` recorded in the inviting organization's audit log, in one transaction.
    async fn decline_invitation(
        &self,
        invitee: UserId,
        invitation: InvitationId,
        event: crate::NewAuditEvent,
    ) -> Result<OrganizationId, InvitationError>;
}

/// How current the answer of a credential check must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// What the store held at most [`CREDENTIAL_STALENESS`] ago: for a read, whose work is
    /// the transaction the check opens. The store may answer from a cache it keeps current,
    /// and only for a credential it accepted.
    Recent,
    /// What the store holds now: for a change (its work checks again), and for anything
    /// that acts on the credential itself.
    Current,
}

/// The oldest a [`Freshness::Recent`] answer may be: a credential revoked, or a user
/// disabled, removed or given another role, is refused by every replica within this.
pub const CREDENTIAL_STALENESS: std::time::Duration = std::time::Duration::from_secs(1);

/// What a credential says of its user, to be checked by [`UnitOfWorkFactory::begin_claimed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// One of the backend's access tokens whose signature verified.
    AccessToken {
        user: UserId,
        jti: uuid::Uuid,
        sid: Option<uuid::Uuid>,
    },
}

/// What [`UnitOfWorkFactory::begin_claimed`] found, and the transaction it opened.
pub struct Entered {
    /// The claim's user as they are now; `None` for a user who does not exist.
    pub subject: Option<crate::AccessTokenSubject>,
    /// The unit of work in the user's organization, when the claim holds and there is one.
    pub work: Option<Box<dyn UnitOfWork>>,
}

impl std::fmt::Debug for Entered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entered")
            .field("subject", &self.subject)
            .field("work", &self.work.as_ref().map(|w| w.tenant()))
            .finish()
    }
}

/// What [`UnitOfWorkFactory::begin_session`] found, and the transaction it opened.
pub struct EnteredSession {
    pub lookup: crate::SessionLookup,
    /// The live session's user as they are now.
    pub user: Option<crate::ResolvedUser>,
    /// The unit of work in the user's organization, when the session lives, its user is
    /// active and in one.
    pub work: Option<Box<dyn UnitOfWork>>,
}

impl std::fmt::Debug for EnteredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnteredSession")
            .field("user", &self.user)
            .field("work", &self.work.as_ref().map(|w| w.tenant()))
            .finish_non_exhaustive()
    }
}

/// An API token that authenticated, and the transaction it was found in.
pub struct EnteredToken {
    pub token: crate::ResolvedApiToken,
    pub work: Box<dyn UnitOfWork>,
}

impl std::fmt::Debug for EnteredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnteredToken")
            .field("token", &self.token)
            .field("work", &self.work.tenant())
            .finish()
    }
}

/// Why an invitation could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    /// No pending invitation of that id is addressed to the principal's verified address.
    #[error("no such invitation")]
    NotFound,
    /// The principal already belongs to an organization; a user belongs to at most one.
    #[error("the user already belongs to an organization")]
    AlreadyMember,
    /// The organization has as many members as it may have.
    #[error("the organization is full")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One transaction in one tenant.
///
/// A store error that came from the database (anything but `NotFound`) aborts the unit of
/// work: later calls fail and `commit` MUST return an error rather than commit a part.
#[async_trait]
pub trait UnitOfWork: Send + Sync {
    /// The organization whose rows this unit of work reaches, and the user it acts for.
    fn tenant(&self) -> (OrganizationId, UserId);
    fn organizations(&self) -> &dyn OrganizationStore;
    fn users(&self) -> &dyn UserStore;
    fn invitations(&self) -> &dyn InvitationStore;
    fn projects(&self) -> &dyn ProjectStore;
    fn endpoints(&self) -> &dyn crate::EndpointStore;
    fn models(&self) -> &dyn crate::ModelStore;
    fn api_tokens(&self) -> &dyn crate::ApiTokenStore;
    fn audit(&self) -> &dyn crate::AuditStore;
    /// Makes every change of this unit of work durable, or none of them.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Fields of a new organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrganization {
    pub name: Name,
    pub display_name: Option<Name>,
    pub description: Option<Description>,
    pub website: Option<HttpUrl>,
    pub logo_url: Option<HttpUrl>,
    pub email: Option<Email>,
}

impl NewOrganization {
    /// An organization with a name and nothing else yet.
    pub fn named(name: Name) -> Self {
        Self {
            name,
            display_name: None,
            description: None,
            website: None,
            logo_url: None,
            email: None,
        }
    }
}

/// Changes to an organization.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrganizationPatch {
    pub name: Patch<Name>,
    pub display_name: Patch<Option<Name>>,
    pub description: Patch<Option<Description>>,
    pub website: Patch<Option<HttpUrl>>,
    pub logo_url: Patch<Option<HttpUrl>>,
    pub email: Patch<Option<Email>>,
    pub is_onboarding_complete: Patch<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganizationSort {
    Name,
    CreatedAt,
}

/// The scope's organization.
#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// The scope's organization. MUST return `NotFound` once it is deleted.
    async fn current(&self) -> Result<Organization, StoreError>;
    /// The organizations visible in this scope: the scope's own, unless deleted.
    async fn list(
        &self,
        page: PageRequest<OrganizationSort>,
    ) -> Result<Page<Organization>, StoreError>;
    async fn update(&self, patch: OrganizationPatch) -> Result<Organization, StoreError>;
    /// Marks the organization deleted, and takes every member out of it: it disappears from
    /// every read and no credential of its members works in it any more.
    async fn soft_delete(&self) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    Email,
    Name,
    CreatedAt,
}

/// The members of the scope's organization.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// A member of the organization. MUST return `NotFound` for users of other organizations.
    async fn get(&self, id: UserId) -> Result<User, StoreError>;
    async fn list(&self, page: PageRequest<UserSort>) -> Result<Page<User>, StoreError>;
    /// Number of owners of the organization (for the last-owner rule). MUST hold the owners
    /// until the unit of work ends, so that two concurrent demotions cannot both count the
    /// other owner.
    async fn count_owners(&self) -> Result<u64, StoreError>;
    async fn set_role(&self, id: UserId, role: Role) -> Result<User, StoreError>;
    /// Takes the user out of the organization (the user itself lives on with the provider).
    async fn remove(&self, id: UserId) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationSort {
    Email,
    CreatedAt,
}

/// The pending invitations of the scope's organization. Nothing here looks beyond it: an
/// address is invited the same whether or not anyone uses it elsewhere.
#[async_trait]
pub trait InvitationStore: Send + Sync {
    /// Invites `email` with `role`, by the scope's user, for 14 days (the database's clock).
    /// MUST return `Duplicate { what: "invitations.email" }` when the organization already
    /// invited the address, and `Duplicate { what: "users.email" }` when one of its members
    /// has it.
    async fn create(&self, email: Email, role: Role) -> Result<Invitation, StoreError>;
    async fn list(&self, page: PageRequest<InvitationSort>)
    -> Result<Page<Invitation>, StoreError>;
    /// Withdraws a pending invitation; `NotFound` for one of another organization.
    async fn revoke(&self, id: InvitationId) -> Result<Invitation, StoreError>;
}

/// Fields of a new project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    pub name: Name,
    pub description: Option<Description>,
    pub icon: Option<Name>,
}

/// Changes to a project.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectPatch {
    pub name: Patch<Name>,
    pub description: Patch<Option<Description>>,
    pub icon: Patch<Option<Name>>,
    pub is_active: Patch<bool>,
    pub owner_id: Patch<Option<UserId>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectSort {
    Name,
    CreatedAt,
    UpdatedAt,
}

/// The projects of the scope's organization.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Creates a project owned and created by the scope's user.
    async fn create(&self, new: NewProject) -> Result<Project, StoreError>;
    /// MUST return `NotFound` for a deleted project or one of another organization.
    async fn get(&self, id: ProjectId) -> Result<Project, StoreError>;
    async fn list(&self, page: PageRequest<ProjectSort>) -> Result<Page<Project>, StoreError>;
    /// MUST return `NotFound` as `get` does; `MissingReference` for an owner outside the tenant.
    async fn update(&self, id: ProjectId, patch: ProjectPatch) -> Result<Project, StoreError>;
    /// MUST return `NotFound` as `get` does.
    async fn soft_delete(&self, id: ProjectId) -> Result<(), StoreError>;
}

/// Whether the service can do its work (its database answers).
#[async_trait]
pub trait HealthCheck: Send + Sync + std::fmt::Debug {
    async fn ready(&self) -> Result<(), StoreError>;
}
