//! Rows to domain types. A row that breaks a domain rule is reported as corrupt, never
//! passed on half-valid.

use domain::{
    AuthType, Description, Email, Endpoint, EndpointId, EndpointProtocol, HttpMethod, HttpUrl,
    Invitation, InvitationId, Membership, Model, ModelId, Name, Organization, OrganizationId,
    Project, ProjectId, RequestHeaders, Role, User, UserId,
};
use ports::StoreError;

use crate::entities::{endpoints, invitations, models, organizations, projects, users};
use crate::error::corrupt;
use crate::secret_columns::slot;

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

impl TryFrom<invitations::Model> for Invitation {
    type Error = StoreError;

    fn try_from(m: invitations::Model) -> Result<Self, StoreError> {
        const T: &str = "invitations";
        Ok(Self {
            id: InvitationId::from_uuid(m.id),
            organization_id: OrganizationId::from_uuid(m.organization_id),
            email: Email::new(&m.email).map_err(|_| corrupt(T, "email", m.id))?,
            role: m
                .role
                .parse::<Role>()
                .map_err(|_| corrupt(T, "role", m.id))?,
            invited_by: m.invited_by.map(UserId::from_uuid),
            created_at: m.created_at,
            expires_at: m.expires_at,
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

/// Request headers stored as a JSON object of strings.
pub(crate) fn headers_from_json(
    value: serde_json::Value,
    table: &'static str,
    id: uuid::Uuid,
) -> Result<RequestHeaders, StoreError> {
    let serde_json::Value::Object(map) = value else {
        return Err(corrupt(table, "request_headers", id));
    };
    let mut pairs = Vec::with_capacity(map.len());
    for (name, value) in map {
        let serde_json::Value::String(value) = value else {
            return Err(corrupt(table, "request_headers", id));
        };
        pairs.push((name, value));
    }
    RequestHeaders::new(pairs).map_err(|_| corrupt(table, "request_headers", id))
}

pub(crate) fn headers_to_json(headers: &RequestHeaders) -> serde_json::Value {
    serde_json::Value::Object(
        headers
            .iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned())))
            .collect(),
    )
}

/// JSON text from the caller, as a `jsonb` value. The caller checked it; text that does not
/// parse is refused, never stored.
pub(crate) fn json_from_text(
    text: Option<&str>,
    what: &'static str,
) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| serde_json::from_str(t).map_err(|_| StoreError::InvalidInput { what }))
        .transpose()
}

impl TryFrom<endpoints::Model> for Endpoint {
    type Error = StoreError;

    fn try_from(m: endpoints::Model) -> Result<Self, StoreError> {
        const T: &str = "endpoints";
        Ok(Self {
            id: EndpointId::from_uuid(m.id),
            organization_id: OrganizationId::from_uuid(m.organization_id),
            project_id: m.project_id.map(ProjectId::from_uuid),
            name: name(T, "name", m.id, &m.name)?,
            description: opt(m.description, Description::new, T, "description", m.id)?,
            url: HttpUrl::new(&m.url).map_err(|_| corrupt(T, "url", m.id))?,
            method: m
                .method
                .parse::<HttpMethod>()
                .map_err(|_| corrupt(T, "method", m.id))?,
            protocol: m
                .protocol
                .parse::<EndpointProtocol>()
                .map_err(|_| corrupt(T, "protocol", m.id))?,
            request_headers: headers_from_json(m.request_headers, T, m.id)?,
            request_mapping: m.request_mapping.map(|v| v.to_string()),
            response_mapping: m.response_mapping.map(|v| v.to_string()),
            auth_type: m
                .auth_type
                .parse::<AuthType>()
                .map_err(|_| corrupt(T, "auth_type", m.id))?,
            client_id: m.client_id,
            token_url: opt(m.token_url, HttpUrl::new, T, "token_url", m.id)?,
            scopes: m.scopes,
            audience: m.audience,
            auth_token: slot(m.auth_token.as_ref(), m.auth_token_hint),
            client_secret: slot(m.client_secret.as_ref(), m.client_secret_hint),
            last_token: slot(m.last_token.as_ref(), m.last_token_hint),
            last_token_expires_at: m.last_token_expires_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

impl TryFrom<models::Model> for Model {
    type Error = StoreError;

    fn try_from(m: models::Model) -> Result<Self, StoreError> {
        const T: &str = "models";
        Ok(Self {
            id: ModelId::from_uuid(m.id),
            organization_id: OrganizationId::from_uuid(m.organization_id),
            name: name(T, "name", m.id, &m.name)?,
            description: opt(m.description, Description::new, T, "description", m.id)?,
            model_name: name(T, "model_name", m.id, &m.model_name)?,
            provider: name(T, "provider", m.id, &m.provider)?,
            endpoint: opt(m.endpoint, HttpUrl::new, T, "endpoint", m.id)?,
            request_headers: headers_from_json(m.request_headers, T, m.id)?,
            key: slot(m.key.as_ref(), m.key_hint),
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}
