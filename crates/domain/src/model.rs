use chrono::{DateTime, Utc};

use crate::{Description, HttpUrl, ModelId, Name, OrganizationId, RequestHeaders, SecretSlot};

/// An LLM provider configuration. Its API `key` is write-only, as every secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub id: ModelId,
    pub organization_id: OrganizationId,
    pub name: Name,
    pub description: Option<Description>,
    /// The provider's name for the model, e.g. `gpt-4o`.
    pub model_name: Name,
    /// The provider, e.g. `openai`.
    pub provider: Name,
    pub endpoint: Option<HttpUrl>,
    pub request_headers: RequestHeaders,
    pub key: SecretSlot,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
