//! From the keyed chain on, every new audit event is keyed: an unkeyed one (`hash_version`
//! 1), which anyone who can insert could write without the key, is refused by the database.
//! The events from before the key stay as they are (the constraint is not validated against
//! them).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(
            manager,
            "ALTER TABLE audit_events ADD CONSTRAINT audit_events_keyed \
             CHECK (hash_version = 2) NOT VALID;",
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::run_script(
            manager,
            "ALTER TABLE audit_events DROP CONSTRAINT audit_events_keyed;",
        )
        .await
    }
}
