//! sea-orm entities: one module per table, mirroring the migration's columns.

pub(crate) mod organizations;
pub(crate) mod projects;
pub(crate) mod users;
