//! sea-orm entities: one module per table, mirroring the migration's columns. Secret columns
//! are typed [`crate::secret_columns::Sealed`].

pub(crate) mod api_tokens;
pub(crate) mod endpoints;
pub(crate) mod invitations;
pub(crate) mod models;
pub(crate) mod organizations;
pub(crate) mod projects;
pub(crate) mod users;
