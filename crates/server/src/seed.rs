//! `rhesis-server seed-dev`: the development profile's demo organization, its admin and a
//! project, created through the same ports as real data. Idempotent.

use app::Principal;
use domain::{AuditAction, Email, Membership, Name, Role};
use ports::{IdentityDirectory, NewIdentity, NewOrganization, NewProject, UnitOfWorkFactory};

use crate::config::{Profile, ServeArgs};
use crate::{StartupError, connect_checked};

/// The identity-provider subject of the seeded administrator.
pub const DEV_ADMIN_SUBJECT: &str = "local|dev-admin";
/// The e-mail address of the seeded administrator.
pub const DEV_ADMIN_EMAIL: &str = "admin@example.org";

fn valid<T, E: std::error::Error + Send + Sync + 'static>(
    value: Result<T, E>,
) -> Result<T, StartupError> {
    value.map_err(|e| StartupError::Store(ports::StoreError::Unexpected(Box::new(e))))
}

/// Seeds the development data and returns what to print.
#[allow(
    clippy::disallowed_methods,
    reason = "the development seed acts as its owner by the operator's escape"
)]
pub async fn seed_dev(args: &ServeArgs) -> Result<String, StartupError> {
    if args.profile != Profile::Development {
        return Err(StartupError::DevelopmentOnly("seed-dev"));
    }
    let (store, _) = connect_checked(args).await?;
    let existing = store
        .unscoped_user_by_subject(DEV_ADMIN_SUBJECT)
        .await
        .map_err(StartupError::Store)?;
    if let Some(user) = &existing
        && user.membership.is_some()
    {
        return Ok(format!(
            "development data present: {DEV_ADMIN_EMAIL} is an owner"
        ));
    }
    let user = match existing {
        Some(user) => user,
        None => store
            .unscoped_sign_in(NewIdentity {
                subject: DEV_ADMIN_SUBJECT.to_owned(),
                email: valid(Email::new(DEV_ADMIN_EMAIL))?,
                email_verified: true,
                name: Some(valid(Name::new("Development Admin"))?),
            })
            .await
            .map_err(StartupError::Store)?,
    };
    let organization = store
        .found_organization(
            user.user_id,
            NewOrganization::named(valid(Name::new("Demo Organization"))?),
            ports::NewAuditEvent {
                reason: Some("seed-dev".to_owned()),
                ..ports::NewAuditEvent::by(Some(user.user_id), AuditAction::OrganizationCreated)
            },
        )
        .await
        .map_err(|e| StartupError::Store(ports::StoreError::Unexpected(Box::new(e))))?;
    let owner = Principal::operator(
        user.user_id,
        Some(Membership {
            organization_id: organization.id,
            role: Role::Owner,
        }),
    );
    let scope = owner
        .tenant_scope()
        .ok_or(StartupError::DevelopmentOnly("seed-dev"))?;
    let uow = store.begin(&scope).await.map_err(StartupError::Store)?;
    uow.projects()
        .create(NewProject {
            name: valid(Name::new("Demo project"))?,
            description: None,
            icon: None,
        })
        .await
        .map_err(StartupError::Store)?;
    uow.commit().await.map_err(StartupError::Store)?;
    Ok(format!(
        "development data created: organization {} owned by {DEV_ADMIN_EMAIL}",
        organization.id
    ))
}
