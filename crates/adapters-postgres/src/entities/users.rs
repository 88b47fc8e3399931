use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) name: Option<String>,
    pub(crate) given_name: Option<String>,
    pub(crate) family_name: Option<String>,
    pub(crate) picture: Option<String>,
    pub(crate) is_active: bool,
    pub(crate) is_verified: bool,
    pub(crate) idp_subject: Option<String>,
    pub(crate) organization_id: Option<Uuid>,
    pub(crate) role: Option<String>,
    pub(crate) left_organization_id: Option<Uuid>,
    pub(crate) last_login_at: Option<DateTimeUtc>,
    pub(crate) settings: Json,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
