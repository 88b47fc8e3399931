//! Stores of the resources that hold secrets: endpoints (credentials of the application under
//! test) and models (a provider's API key).
//!
//! Secret fields are write-only here: reads return a [`domain::SecretSlot`] (set or not, and a
//! hint), and the plaintext comes only from the explicitly named `unseal_…` methods, for the
//! code that must use it.

use async_trait::async_trait;
use domain::{
    AuthType, Description, Endpoint, EndpointId, EndpointProtocol, HttpMethod, HttpUrl, Model,
    ModelId, Name, ProjectId, RequestHeaders,
};
use secrecy::SecretString;

use crate::{Page, PageRequest, Patch, StoreError};

/// A write to a secret field.
#[derive(Debug, Clone, Default)]
pub enum SecretPatch {
    #[default]
    Keep,
    Set(SecretString),
    Clear,
}

/// Fields of a new endpoint. JSON mappings are JSON text, checked by the caller.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub project_id: Option<ProjectId>,
    pub name: Name,
    pub description: Option<Description>,
    pub url: HttpUrl,
    pub method: HttpMethod,
    pub protocol: EndpointProtocol,
    pub request_headers: RequestHeaders,
    pub request_mapping: Option<String>,
    pub response_mapping: Option<String>,
    pub auth_type: AuthType,
    pub client_id: Option<String>,
    pub token_url: Option<HttpUrl>,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub auth_token: Option<SecretString>,
    pub client_secret: Option<SecretString>,
}

/// Changes to an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub project_id: Patch<Option<ProjectId>>,
    pub name: Patch<Name>,
    pub description: Patch<Option<Description>>,
    pub url: Patch<HttpUrl>,
    pub method: Patch<HttpMethod>,
    pub request_headers: Patch<RequestHeaders>,
    pub auth_type: Patch<AuthType>,
    pub client_id: Patch<Option<String>>,
    pub token_url: Patch<Option<HttpUrl>>,
    pub scopes: Patch<Vec<String>>,
    pub audience: Patch<Option<String>>,
    pub auth_token: SecretPatch,
    pub client_secret: SecretPatch,
    /// The cached access token of the client-credentials flow and its expiry.
    pub last_token: SecretPatch,
    pub last_token_expires_at: Patch<Option<chrono::DateTime<chrono::Utc>>>,
}

/// The plaintext credentials of an endpoint, for the code that calls it.
#[derive(Debug, Clone)]
pub struct EndpointCredentials {
    pub auth_token: Option<SecretString>,
    pub client_secret: Option<SecretString>,
    pub last_token: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointSort {
    Name,
    CreatedAt,
    UpdatedAt,
}

/// The endpoints of the scope's organization.
#[async_trait]
pub trait EndpointStore: Send + Sync {
    /// MUST return `MissingReference { what: "project" }` for a project outside the tenant.
    async fn create(&self, new: NewEndpoint) -> Result<Endpoint, StoreError>;
    /// MUST return `NotFound` for a deleted endpoint or one of another organization.
    async fn get(&self, id: EndpointId) -> Result<Endpoint, StoreError>;
    async fn list(&self, page: PageRequest<EndpointSort>) -> Result<Page<Endpoint>, StoreError>;
    async fn update(&self, id: EndpointId, patch: EndpointPatch) -> Result<Endpoint, StoreError>;
    async fn soft_delete(&self, id: EndpointId) -> Result<(), StoreError>;
    /// The plaintext credentials. MUST fail, without the secret, when a stored value does not
    /// open in this row (wrong key, moved from another row, plaintext outside the window).
    async fn unseal_credentials(&self, id: EndpointId) -> Result<EndpointCredentials, StoreError>;
}

/// Fields of a new model.
#[derive(Debug, Clone)]
pub struct NewModel {
    pub name: Name,
    pub description: Option<Description>,
    pub model_name: Name,
    pub provider: Name,
    pub endpoint: Option<HttpUrl>,
    pub request_headers: RequestHeaders,
    pub key: Option<SecretString>,
}

/// Changes to a model.
#[derive(Debug, Clone, Default)]
pub struct ModelPatch {
    pub name: Patch<Name>,
    pub description: Patch<Option<Description>>,
    pub model_name: Patch<Name>,
    pub provider: Patch<Name>,
    pub endpoint: Patch<Option<HttpUrl>>,
    pub request_headers: Patch<RequestHeaders>,
    pub key: SecretPatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSort {
    Name,
    CreatedAt,
}

/// The models of the scope's organization.
#[async_trait]
pub trait ModelStore: Send + Sync {
    async fn create(&self, new: NewModel) -> Result<Model, StoreError>;
    /// MUST return `NotFound` for a deleted model or one of another organization.
    async fn get(&self, id: ModelId) -> Result<Model, StoreError>;
    async fn list(&self, page: PageRequest<ModelSort>) -> Result<Page<Model>, StoreError>;
    async fn update(&self, id: ModelId, patch: ModelPatch) -> Result<Model, StoreError>;
    async fn soft_delete(&self, id: ModelId) -> Result<(), StoreError>;
    /// The plaintext API key, as `unseal_credentials` for endpoints.
    async fn unseal_key(&self, id: ModelId) -> Result<Option<SecretString>, StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiTokenSort {
    Name,
    CreatedAt,
}

/// The API tokens of the scope's user. Every method acts on the caller's own tokens only: a
/// token of another user, even in the same organization, MUST be `NotFound`.
#[async_trait]
pub trait ApiTokenStore: Send + Sync {
    /// Creates a token; its value is returned here, once, and never again.
    async fn create(
        &self,
        name: Name,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(domain::ApiToken, SecretString), StoreError>;
    async fn get_own(&self, id: domain::ApiTokenId) -> Result<domain::ApiToken, StoreError>;
    async fn list_own(
        &self,
        page: PageRequest<ApiTokenSort>,
    ) -> Result<Page<domain::ApiToken>, StoreError>;
    async fn rename_own(
        &self,
        id: domain::ApiTokenId,
        name: Name,
    ) -> Result<domain::ApiToken, StoreError>;
    /// Revokes the token at once: it no longer resolves.
    async fn revoke_own(&self, id: domain::ApiTokenId) -> Result<(), StoreError>;
    /// Records that the token was used now. MUST write only when the recorded use is older
    /// than `resolution` (a busy token does not write on every request), and return whether
    /// this is the token's first recorded use.
    async fn touch_own(
        &self,
        id: domain::ApiTokenId,
        resolution: chrono::Duration,
    ) -> Result<bool, StoreError>;
    /// Gives the token a new value (returned once); the old value is dead at once.
    async fn refresh_own(
        &self,
        id: domain::ApiTokenId,
    ) -> Result<(domain::ApiToken, SecretString), StoreError>;
}
