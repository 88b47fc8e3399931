//! The organization's pending invitations. Inviting looks at this organization alone (its
//! invitations, its members): whether the address is anyone's elsewhere is never asked.

use async_trait::async_trait;
use domain::{Email, Invitation, InvitationId, Role};
use ports::{InvitationSort, InvitationStore, Page, PageRequest, StoreError};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Select,
};
use uuid::Uuid;

use crate::entities::{invitations, users};
use crate::uow::PgUnitOfWork;

/// An invitation whose answer time has passed, by the database's clock (which set it).
fn expired() -> Expr {
    Expr::col(invitations::Column::ExpiresAt).lte(Expr::current_timestamp())
}

impl PgUnitOfWork {
    fn pending(&self) -> Select<invitations::Entity> {
        invitations::Entity::find()
            .filter(invitations::Column::OrganizationId.eq(self.org()))
            .filter(expired().not())
    }
}

#[async_trait]
impl InvitationStore for PgUnitOfWork {
    async fn create(&self, email: Email, role: Role) -> Result<Invitation, StoreError> {
        let members_with_it = self
            .members()
            .filter(users::Column::Email.eq(email.as_str()))
            .count(&self.txn)
            .await
            .map_err(|e| self.abort(e))?;
        if members_with_it > 0 {
            return Err(StoreError::Duplicate {
                what: "users.email",
            });
        }
        // An expired invitation of the address makes room for the new one.
        invitations::Entity::delete_many()
            .filter(invitations::Column::OrganizationId.eq(self.org()))
            .filter(invitations::Column::Email.eq(email.as_str()))
            .filter(expired())
            .exec(&self.txn)
            .await
            .map_err(|e| self.abort(e))?;
        // The times are the database's (the column defaults: 14 days to answer), which the
        // functions that answer invitations compare with the database's clock.
        let row = invitations::ActiveModel {
            id: Set(Uuid::now_v7()),
            organization_id: Set(self.org()),
            email: Set(email.as_str().to_owned()),
            role: Set(role.as_str().to_owned()),
            invited_by: Set(Some(*self.user.as_uuid())),
            created_at: NotSet,
            expires_at: NotSet,
        };
        self.insert_row(row).await
    }

    async fn list(
        &self,
        page: PageRequest<InvitationSort>,
    ) -> Result<Page<Invitation>, StoreError> {
        let column = match page.sort().field {
            InvitationSort::Email => invitations::Column::Email,
            InvitationSort::CreatedAt => invitations::Column::CreatedAt,
        };
        let direction = page.sort().direction;
        self.fetch_page(
            self.pending(),
            column,
            invitations::Column::Id,
            &page,
            direction,
        )
        .await
    }

    async fn revoke(&self, id: InvitationId) -> Result<Invitation, StoreError> {
        let gone = invitations::Entity::delete_many()
            .filter(invitations::Column::OrganizationId.eq(self.org()))
            .filter(invitations::Column::Id.eq(*id.as_uuid()))
            .exec_with_returning(&self.txn)
            .await
            .map_err(|e| self.abort(e))?;
        gone.into_iter()
            .next()
            .ok_or(StoreError::NotFound)?
            .try_into()
    }
}
