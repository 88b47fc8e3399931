//! Endpoints (LLM applications under test) of the caller's organization. Writing one of
//! their credentials is an operation of its own (a fresh login, no API tokens), recorded as
//! one event per credential written; so is moving where a stored credential is sent.

use domain::{Action, AuditTarget, Endpoint, EndpointId, Operation, SecretSlot};
use ports::{
    EndpointPatch, EndpointSort, NewAuditEvent, NewEndpoint, Page, PageRequest, Patch, SecretPatch,
    StoreError,
};

use crate::errors::use_case_error;
use crate::{App, Caller, Refused};

/// Why an endpoint could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateEndpointError {
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The project named is not a live project of the caller's organization.
    #[error("no such project")]
    ProjectNotFound,
    #[error(transparent)]
    Store(StoreError),
}

use_case_error!(
    /// Why the endpoints could not be listed.
    ListEndpointsError
);
use_case_error!(
    /// Why an endpoint could not be read.
    GetEndpointError,
    not_found
);

/// Why an endpoint could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateEndpointError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("no such endpoint")]
    NotFound,
    /// The project named is not a live project of the caller's organization.
    #[error("no such project")]
    ProjectNotFound,
    #[error(transparent)]
    Store(StoreError),
}

use_case_error!(
    /// Why an endpoint could not be deleted.
    DeleteEndpointError,
    not_found
);

impl From<StoreError> for CreateEndpointError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::MissingReference { what: "project" } => Self::ProjectNotFound,
            err => Self::Store(err),
        }
    }
}

impl From<StoreError> for UpdateEndpointError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            StoreError::MissingReference { what: "project" } => Self::ProjectNotFound,
            err => Self::Store(err),
        }
    }
}

/// One `secret.written` event per credential written (`reason` names it), by the caller
/// about endpoint `id`.
fn secret_writes(caller: &Caller, id: EndpointId, fields: &[(&str, bool)]) -> Vec<NewAuditEvent> {
    fields
        .iter()
        .filter(|(_, written)| *written)
        .map(|(field, _)| {
            let mut event = caller.event_on(
                Operation::WriteEndpointCredential.policy().event,
                AuditTarget::Endpoint(id),
            );
            event.reason = Some((*field).to_owned());
            event
        })
        .collect()
}

impl App {
    /// Creates an endpoint. Writing a credential with it is permitted first, before anything
    /// is looked up.
    pub async fn create_endpoint(
        &self,
        caller: &Caller,
        new: NewEndpoint,
    ) -> Result<Endpoint, CreateEndpointError> {
        const OP: Operation = Operation::CreateEndpoint;
        let writes = [
            ("auth_token", new.auth_token.is_some()),
            ("client_secret", new.client_secret.is_some()),
        ];
        if writes.iter().any(|(_, w)| *w) {
            self.permit(caller, Operation::WriteEndpointCredential)
                .await?;
        }
        let uow = self.begin_op::<CreateEndpointError>(caller, OP).await?;
        let endpoint = uow.endpoints().create(new).await?;
        let also = secret_writes(caller, endpoint.id, &writes);
        self.finish_with::<CreateEndpointError>(
            caller,
            uow,
            OP,
            AuditTarget::Endpoint(endpoint.id),
            also,
        )
        .await?;
        Ok(endpoint)
    }

    /// A page of the organization's endpoints, and how many there are.
    pub async fn list_endpoints(
        &self,
        caller: &Caller,
        page: PageRequest<EndpointSort>,
    ) -> Result<Page<Endpoint>, ListEndpointsError> {
        let uow = self
            .begin_read::<ListEndpointsError>(caller, Action::ReadContent)
            .await?;
        Ok(uow.endpoints().list(page).await?)
    }

    pub async fn get_endpoint(
        &self,
        caller: &Caller,
        id: EndpointId,
    ) -> Result<Endpoint, GetEndpointError> {
        let uow = self
            .begin_read::<GetEndpointError>(caller, Action::ReadContent)
            .await?;
        Ok(uow.endpoints().get(id).await?)
    }

    /// Changes an endpoint. Writing or clearing a credential is permitted as well; so is
    /// moving a stored one (a new `url` or `token_url` while a credential is stored), which
    /// the unit of work reads first, so another organization's id is a 404 there.
    pub async fn update_endpoint(
        &self,
        caller: &Caller,
        id: EndpointId,
        patch: EndpointPatch,
    ) -> Result<Endpoint, UpdateEndpointError> {
        const OP: Operation = Operation::UpdateEndpoint;
        let writes = [
            ("auth_token", !matches!(patch.auth_token, SecretPatch::Keep)),
            (
                "client_secret",
                !matches!(patch.client_secret, SecretPatch::Keep),
            ),
        ];
        let uow = self.begin_op::<UpdateEndpointError>(caller, OP).await?;
        let mut wider = Vec::new();
        if writes.iter().any(|(_, w)| *w) {
            wider.push(Operation::WriteEndpointCredential);
        }
        // Where a stored credential is sent: moving it is as sensitive as writing the secret.
        if matches!(patch.url, Patch::Set(_)) || matches!(patch.token_url, Patch::Set(_)) {
            let current = uow.endpoints().get(id).await?;
            let moves = matches!(&patch.url, Patch::Set(url) if *url != current.url)
                || matches!(&patch.token_url, Patch::Set(url) if *url != current.token_url);
            let stored = [
                &current.auth_token,
                &current.client_secret,
                &current.last_token,
            ]
            .into_iter()
            .any(SecretSlot::is_set);
            if moves && stored {
                wider.push(Operation::RetargetEndpoint);
            }
        }
        let uow = self.permit_also(caller, uow, &wider).await?;
        let endpoint = uow.endpoints().update(id, patch).await?;
        let also = secret_writes(caller, id, &writes);
        self.finish_with::<UpdateEndpointError>(caller, uow, OP, AuditTarget::Endpoint(id), also)
            .await?;
        Ok(endpoint)
    }

    /// Marks an endpoint deleted: it disappears from every read.
    pub async fn delete_endpoint(
        &self,
        caller: &Caller,
        id: EndpointId,
    ) -> Result<(), DeleteEndpointError> {
        const OP: Operation = Operation::DeleteEndpoint;
        let uow = self.begin_op::<DeleteEndpointError>(caller, OP).await?;
        uow.endpoints().soft_delete(id).await?;
        self.finish(caller, uow, OP, AuditTarget::Endpoint(id))
            .await
    }
}
