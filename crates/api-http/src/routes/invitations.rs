//! Invitations. An organization invites an address and sees only its own invitations; the
//! answer is the same whether or not the address belongs to anyone elsewhere. The invited
//! person, after a login in which the provider verified that address, sees the invitations
//! addressed to it and accepts or declines each: nobody joins an organization otherwise.

use actix_web::{HttpResponse, delete, get, post, web};
use app::invitations::{
    AnswerInvitationError, InviteUserError, ListInvitationsError, MyInvitationsError,
    RevokeInvitationError,
};
use chrono::{DateTime, Utc};
use domain::{Email, Invitation, InvitationId, PendingInvitation, Role};
use ports::{InvitationError, InvitationSort};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::list::{ListQuery, SortKey, page_response};
use super::{created, required};
use crate::auth::Caller;
use crate::error::Problem;
use crate::{ApiError, ErrorCode};

pub(crate) fn routes(cfg: &mut ServiceConfig<'_>) {
    cfg.service(invite_user)
        .service(list_invitations)
        .service(revoke_invitation)
        .service(my_invitations)
        .service(accept_invitation)
        .service(decline_invitation);
}

impl SortKey for InvitationSort {
    const KEYS: &'static [(&'static str, Self)] =
        &[("created_at", Self::CreatedAt), ("email", Self::Email)];
}

/// An invitation as its organization sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InvitationView {
    id: Uuid,
    organization_id: Uuid,
    email: String,
    /// The role the person gets on accepting: owner, admin or member.
    role: &'static str,
    invited_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl From<Invitation> for InvitationView {
    fn from(i: Invitation) -> Self {
        Self {
            id: *i.id.as_uuid(),
            organization_id: *i.organization_id.as_uuid(),
            email: i.email.as_str().to_owned(),
            role: i.role.as_str(),
            invited_by: i.invited_by.map(|u| *u.as_uuid()),
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

/// An invitation as the invited person sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PendingInvitationView {
    id: Uuid,
    organization_id: Uuid,
    organization_name: String,
    role: &'static str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl From<PendingInvitation> for PendingInvitationView {
    fn from(i: PendingInvitation) -> Self {
        Self {
            id: *i.id.as_uuid(),
            organization_id: *i.organization_id.as_uuid(),
            organization_name: i.organization_name,
            role: i.role.as_str(),
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

/// The organization and role a person joined by accepting.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Joined {
    organization_id: Uuid,
    role: &'static str,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewInvitation {
    /// The person sees the invitation once they sign in with this address, verified by the
    /// identity provider, and joins if they accept it.
    email: String,
    /// owner, admin or member (default). Only an owner invites an owner.
    role: Option<String>,
}

/// Invites an address (admins and owners; fresh login). The answer does not depend on
/// whether the address belongs to anyone in another organization.
#[utoipa::path(
    tag = "invitations",
    security(("bearer" = [])),
    request_body = NewInvitation,
    responses(
        (status = 201, body = InvitationView),
        (status = 400, body = Problem),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem),
        (status = 403, body = Problem),
        (status = 409, description = "This organization already invited the address or has it as a member, or is full", body = Problem)
    )
)]
#[post("/api/v1/invitations")]
pub(crate) async fn invite_user(
    caller: Caller,
    body: crate::extract::Json<NewInvitation>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let email = required("email", b.email.as_str(), Email::new)?;
    let role = match b.role.as_deref() {
        None => Role::Member,
        Some(text) => required("role", text, str::parse::<Role>)?,
    };
    let invitation = caller
        .use_cases()
        .invite_user(caller.app(), email, role)
        .await?;
    Ok(created(InvitationView::from(invitation)))
}

/// The organization's pending invitations (admins and owners). Sort by `created_at`
/// (default) or `email`.
#[utoipa::path(
    tag = "invitations",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Vec<InvitationView>), (status = 400, body = Problem), (status = 403, body = Problem))
)]
#[get("/api/v1/invitations")]
pub(crate) async fn list_invitations(
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<InvitationSort>()?;
    let invitations = caller
        .use_cases()
        .list_invitations(caller.app(), page)
        .await?;
    Ok(page_response(invitations, InvitationView::from))
}

/// Withdraws a pending invitation (admins and owners).
#[utoipa::path(
    tag = "invitations",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 403, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[delete("/api/v1/invitations/{invitation_id}")]
pub(crate) async fn revoke_invitation(
    caller: Caller,
    invitation_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = InvitationId::from_uuid(invitation_id.into_inner());
    caller
        .use_cases()
        .revoke_invitation(caller.app(), id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The invitations addressed to the caller's e-mail address, in any organization; none
/// while the identity provider has not verified the address.
#[utoipa::path(
    tag = "invitations",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<PendingInvitationView>), (status = 401, body = Problem))
)]
#[get("/api/v1/me/invitations")]
pub(crate) async fn my_invitations(
    caller: Caller,
) -> Result<web::Json<Vec<PendingInvitationView>>, ApiError> {
    let pending = caller.use_cases().my_invitations(caller.app()).await?;
    Ok(web::Json(pending.into_iter().map(Into::into).collect()))
}

/// Accepts an invitation addressed to the caller's verified address (fresh login; not with
/// an API token): the caller joins its organization with its role. A user belongs to one
/// organization at most.
#[utoipa::path(
    tag = "invitations",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Joined),
        (status = 401, description = "No valid credential, or a login too old (step-up)", body = Problem),
        (status = 403, body = Problem),
        (status = 404, description = "No such invitation for the caller", body = Problem),
        (status = 409, description = "The caller belongs to an organization, or it is full", body = Problem)
    )
)]
#[post("/api/v1/me/invitations/{invitation_id}/accept")]
pub(crate) async fn accept_invitation(
    caller: Caller,
    invitation_id: web::Path<Uuid>,
) -> Result<web::Json<Joined>, ApiError> {
    let id = InvitationId::from_uuid(invitation_id.into_inner());
    let joined = caller
        .use_cases()
        .accept_invitation(caller.app(), id)
        .await?;
    Ok(web::Json(Joined {
        organization_id: *joined.organization_id.as_uuid(),
        role: joined.role.as_str(),
    }))
}

/// Declines an invitation addressed to the caller's verified address: it is gone, and its
/// organization's audit log says so.
#[utoipa::path(
    tag = "invitations",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Declined"),
        (status = 403, body = Problem),
        (status = 404, description = "No such invitation for the caller", body = Problem)
    )
)]
#[post("/api/v1/me/invitations/{invitation_id}/decline")]
pub(crate) async fn decline_invitation(
    caller: Caller,
    invitation_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let id = InvitationId::from_uuid(invitation_id.into_inner());
    caller
        .use_cases()
        .decline_invitation(caller.app(), id)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

answers!(ListInvitationsError, MyInvitationsError);
answers!(not_found: RevokeInvitationError);

impl From<InviteUserError> for ApiError {
    fn from(err: InviteUserError) -> Self {
        match err {
            InviteUserError::Refused(refused) => refused.into(),
            InviteUserError::Full => full(),
            InviteUserError::Store(err) => err.into(),
        }
    }
}

impl From<AnswerInvitationError> for ApiError {
    fn from(err: AnswerInvitationError) -> Self {
        match err {
            AnswerInvitationError::Refused(refused) => refused.into(),
            AnswerInvitationError::Invitation(InvitationError::NotFound) => {
                ApiError::new(ErrorCode::NotFound)
            }
            AnswerInvitationError::Invitation(err @ InvitationError::AlreadyMember) => {
                ApiError::with_cause(ErrorCode::Conflict, err)
            }
            AnswerInvitationError::Invitation(InvitationError::Full) => full(),
            AnswerInvitationError::Invitation(InvitationError::Store(err)) => err.into(),
        }
    }
}

/// 409: the organization has as many members as it may.
fn full() -> ApiError {
    ApiError::new(ErrorCode::Conflict).with_field("max_users")
}
