//! Rows to domain types. A row that breaks a domain rule is reported as corrupt, never
//! passed on half-valid.

use domain::{
    Description, Email, HttpUrl, Membership, Name, Organization, OrganizationId, Project,
    ProjectId, Role, User, UserId,
};
use ports::StoreError;

use crate::entities::{organizations, projects, users};
use crate::error::corrupt;

fn name(
    table: &'static str,
    column: &'static str,
    id: uuid::Uuid,
    v: &str,
) -> Result<Name, StoreError> {
    Name::new(v).map_err(|_| corrupt(table, column, id))
}

fn opt<T, E>(
    value: Option<String>,
    parse: impl Fn(&str) -> Result<T, E>,
    table: &'static str,
    column: &'static str,
    id: uuid::Uuid,
) -> Result<Option<T>, StoreError> {
    value
        .map(|v| parse(&v).map_err(|_| corrupt(table, column, id)))
        .transpose()
}

impl TryFrom<organizations::Model> for Organization {
    type Error = StoreError;

    fn try_from(m: organizations::Model) -> Result<Self, StoreError> {
        const T: &str = "organizations";
        Ok(Self {
            id: OrganizationId::from_uuid(m.id),
            name: name(T, "name", m.id, &m.name)?,
            display_name: opt(m.display_name, Name::new, T, "display_name", m.id)?,
            description: opt(m.description, Description::new, T, "description", m.id)?,
            website: opt(m.website, HttpUrl::new, T, "website", m.id)?,
            logo_url: opt(m.logo_url, HttpUrl::new, T, "logo_url", m.id)?,
            email: opt(m.email, Email::new, T, "email", m.id)?,
            is_active: m.is_active,
            max_users: m
                .max_users
                .map(u32::try_from)
                .transpose()
                .map_err(|_| corrupt(T, "max_users", m.id))?,
            is_onboarding_complete: m.is_onboarding_complete,
            owner_id: m.owner_id.map(UserId::from_uuid),
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

impl TryFrom<users::Model> for User {
    type Error = StoreError;

    fn try_from(m: users::Model) -> Result<Self, StoreError> {
        const T: &str = "users";
        let membership = match (m.organization_id, m.role.as_deref()) {
            (Some(org), Some(role)) => Some(Membership {
                organization_id: OrganizationId::from_uuid(org),
                role: role.parse::<Role>().map_err(|_| corrupt(T, "role", m.id))?,
            }),
            (None, None) => None,
            _ => return Err(corrupt(T, "role", m.id)),
        };
        Ok(Self {
            id: UserId::from_uuid(m.id),
            email: Email::new(&m.email).map_err(|_| corrupt(T, "email", m.id))?,
            name: opt(m.name, Name::new, T, "name", m.id)?,
            given_name: opt(m.given_name, Name::new, T, "given_name", m.id)?,
            family_name: opt(m.family_name, Name::new, T, "family_name", m.id)?,
            picture: opt(m.picture, HttpUrl::new, T, "picture", m.id)?,
            is_active: m.is_active,
            is_verified: m.is_verified,
            idp_subject: m.idp_subject,
            membership,
            last_login_at: m.last_login_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

impl TryFrom<projects::Model> for Project {
    type Error = StoreError;

    fn try_from(m: projects::Model) -> Result<Self, StoreError> {
        const T: &str = "projects";
        Ok(Self {
            id: ProjectId::from_uuid(m.id),
            organization_id: OrganizationId::from_uuid(m.organization_id),
            name: name(T, "name", m.id, &m.name)?,
            description: opt(m.description, Description::new, T, "description", m.id)?,
            icon: opt(m.icon, Name::new, T, "icon", m.id)?,
            is_active: m.is_active,
            owner_id: m.owner_id.map(UserId::from_uuid),
            created_by: m.created_by.map(UserId::from_uuid),
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}
