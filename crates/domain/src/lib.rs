//! The platform's business rules, free of any framework.
//!
//! This crate holds identifiers, validated values, the entities of the data model and
//! the permission rules. It performs no I/O, reads no clock and draws no random numbers:
//! time and identifiers come in as parameters, so every rule is a pure function that a
//! unit test can pin down. It depends on no web framework and no ORM, so another service
//! can reuse it as it is.

mod api_token;
mod audit;
mod blocks;
mod endpoint;
mod ids;
mod invitation;
mod model;
mod organization;
mod permissions;
mod policy;
mod project;
mod role;
mod user;
mod values;

pub use api_token::ApiToken;
pub use audit::{AuditAction, AuditEvent, AuditOutcome, AuditTarget};
pub use blocks::{
    BlockKey, BlockKeyError, BlockPolicy, BlockState, ClientRecord, StrikeVerdict, client_net,
};
pub use endpoint::{AuthType, Endpoint, EndpointProtocol, HttpMethod};
pub use ids::{
    ApiTokenId, AuditEventId, EndpointId, IdParseError, InvitationId, ModelId, OrganizationId,
    ProjectId, UserId,
};
pub use invitation::{Invitation, PendingInvitation};
pub use model::Model;
pub use organization::Organization;
pub use permissions::{
    Action, Actor, PermissionDenied, authorize, authorize_remove_user, authorize_role_change,
};
pub use policy::{Operation, Policy, Standing};
pub use project::Project;
pub use role::{Role, RoleParseError};
pub use user::{Membership, User};
pub use values::{
    DESCRIPTION_MAX_CHARS, Description, DescriptionError, Email, EmailError,
    HEADER_VALUE_MAX_BYTES, HEADERS_MAX_COUNT, HeaderError, HttpUrl, NAME_MAX_CHARS, Name,
    NameError, RequestHeaders, SecretHint, SecretSlot, URL_MAX_BYTES, UnknownVariant, UrlError,
};
