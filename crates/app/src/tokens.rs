//! The caller's own API tokens. A value leaves the store in the answer to creation and
//! refresh only; nobody reaches another user's tokens.

use chrono::Duration;
use domain::{Action, ApiToken, ApiTokenId, AuditTarget, Name, Operation};
use ports::{ApiTokenSort, Page, PageRequest};
use secrecy::SecretString;

use crate::errors::use_case_error;
use crate::{App, Caller};

use_case_error!(
    /// Why a token could not be created.
    CreateApiTokenError
);
use_case_error!(
    /// Why the caller's tokens could not be listed.
    ListApiTokensError
);
use_case_error!(
    /// Why a token could not be read.
    GetApiTokenError,
    not_found
);
use_case_error!(
    /// Why a token could not be renamed.
    RenameApiTokenError,
    not_found
);
use_case_error!(
    /// Why a token could not be revoked.
    RevokeApiTokenError,
    not_found
);
use_case_error!(
    /// Why a token could not be given a new value.
    RefreshApiTokenError,
    not_found
);

impl App {
    /// Creates a token of the caller's, expiring `expires_in` from now (never without). Its
    /// value is returned here, once.
    pub async fn create_api_token(
        &self,
        caller: &Caller,
        name: Name,
        expires_in: Option<Duration>,
    ) -> Result<(ApiToken, SecretString), CreateApiTokenError> {
        const OP: Operation = Operation::CreateApiToken;
        let uow = self.begin_op::<CreateApiTokenError>(caller, OP).await?;
        let expires_at = expires_in.map(|d| self.clock.now() + d);
        let (token, value) = uow.api_tokens().create(name, expires_at).await?;
        self.finish::<CreateApiTokenError>(caller, uow, OP, AuditTarget::ApiToken(Some(token.id)))
            .await?;
        Ok((token, value))
    }

    /// A page of the caller's own tokens.
    pub async fn list_api_tokens(
        &self,
        caller: &Caller,
        page: PageRequest<ApiTokenSort>,
    ) -> Result<Page<ApiToken>, ListApiTokensError> {
        let uow = self
            .begin_read::<ListApiTokensError>(caller, Action::ManageOwnTokens)
            .await?;
        Ok(uow.api_tokens().list_own(page).await?)
    }

    pub async fn get_api_token(
        &self,
        caller: &Caller,
        id: ApiTokenId,
    ) -> Result<ApiToken, GetApiTokenError> {
        let uow = self
            .begin_read::<GetApiTokenError>(caller, Action::ManageOwnTokens)
            .await?;
        Ok(uow.api_tokens().get_own(id).await?)
    }

    pub async fn rename_api_token(
        &self,
        caller: &Caller,
        id: ApiTokenId,
        name: Name,
    ) -> Result<ApiToken, RenameApiTokenError> {
        const OP: Operation = Operation::RenameApiToken;
        let uow = self.begin_op::<RenameApiTokenError>(caller, OP).await?;
        let token = uow.api_tokens().rename_own(id, name).await?;
        self.finish::<RenameApiTokenError>(caller, uow, OP, AuditTarget::ApiToken(Some(id)))
            .await?;
        Ok(token)
    }

    /// Revokes a token of the caller's: it stops working at once.
    pub async fn revoke_api_token(
        &self,
        caller: &Caller,
        id: ApiTokenId,
    ) -> Result<(), RevokeApiTokenError> {
        const OP: Operation = Operation::RevokeApiToken;
        let uow = self.begin_op::<RevokeApiTokenError>(caller, OP).await?;
        uow.api_tokens().revoke_own(id).await?;
        self.finish(caller, uow, OP, AuditTarget::ApiToken(Some(id)))
            .await
    }

    /// Gives a token of the caller's a new value (returned here, once); the old one is dead
    /// at once.
    pub async fn refresh_api_token(
        &self,
        caller: &Caller,
        id: ApiTokenId,
    ) -> Result<(ApiToken, SecretString), RefreshApiTokenError> {
        const OP: Operation = Operation::RefreshApiToken;
        let uow = self.begin_op::<RefreshApiTokenError>(caller, OP).await?;
        let refreshed = uow.api_tokens().refresh_own(id).await?;
        self.finish::<RefreshApiTokenError>(caller, uow, OP, AuditTarget::ApiToken(Some(id)))
            .await?;
        Ok(refreshed)
    }
}
