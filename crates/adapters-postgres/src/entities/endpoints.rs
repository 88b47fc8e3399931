use sea_orm::entity::prelude::*;

use crate::secret_columns::Sealed;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "endpoints")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) project_id: Option<Uuid>,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) url: String,
    pub(crate) method: String,
    pub(crate) protocol: String,
    pub(crate) request_headers: Json,
    pub(crate) request_mapping: Option<Json>,
    pub(crate) response_mapping: Option<Json>,
    pub(crate) auth_type: String,
    pub(crate) client_id: Option<String>,
    pub(crate) token_url: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) audience: Option<String>,
    pub(crate) auth_token: Option<Sealed>,
    pub(crate) client_secret: Option<Sealed>,
    pub(crate) last_token: Option<Sealed>,
    pub(crate) auth_token_hint: Option<String>,
    pub(crate) client_secret_hint: Option<String>,
    pub(crate) last_token_hint: Option<String>,
    pub(crate) last_token_expires_at: Option<DateTimeUtc>,
    pub(crate) created_by: Option<Uuid>,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) updated_at: DateTimeUtc,
    pub(crate) deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
