use sea_orm::entity::prelude::*;

use crate::secret_columns::Sealed;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "models")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) model_name: String,
    pub(crate) provider: String,
    pub(crate) endpoint: Option<String>,
    pub(crate) request_headers: Json,
    pub(crate) key: Option<Sealed>,
    pub(crate) key_hint: Option<String>,
    pub(crate) created_by: Option<Uuid>,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) updated_at: DateTimeUtc,
    pub(crate) deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
