//! Models (an LLM provider's model and its API key) of the caller's organization. Writing the
//! key is an operation of its own (a fresh login, no API tokens), recorded as an event of its
//! own; so is moving where a stored key is sent.

use domain::{Action, AuditTarget, Model, ModelId, Operation};
use ports::{
    ModelPatch, ModelSort, NewAuditEvent, NewModel, Page, PageRequest, Patch, SecretPatch,
};

use crate::errors::use_case_error;
use crate::{App, Caller};

use_case_error!(
    /// Why a model could not be created.
    CreateModelError
);
use_case_error!(
    /// Why the models could not be listed.
    ListModelsError
);
use_case_error!(
    /// Why a model could not be read.
    GetModelError,
    not_found
);
use_case_error!(
    /// Why a model could not be changed.
    UpdateModelError,
    not_found
);
use_case_error!(
    /// Why a model could not be deleted.
    DeleteModelError,
    not_found
);

/// The `secret.written` event of model `id`'s key, by the caller, if it was written.
fn key_write(caller: &Caller, id: ModelId, written: bool) -> Vec<NewAuditEvent> {
    if !written {
        return Vec::new();
    }
    let mut event = caller.event_on(
        Operation::WriteModelKey.policy().event,
        AuditTarget::Model(id),
    );
    event.reason = Some("key".to_owned());
    vec![event]
}

impl App {
    /// Creates a model. Writing its key is permitted first, before anything is looked up.
    pub async fn create_model(
        &self,
        caller: &Caller,
        new: NewModel,
    ) -> Result<Model, CreateModelError> {
        const OP: Operation = Operation::CreateModel;
        let writes_key = new.key.is_some();
        if writes_key {
            self.permit(caller, Operation::WriteModelKey).await?;
        }
        let uow = self.begin_op::<CreateModelError>(caller, OP).await?;
        let model = uow.models().create(new).await?;
        let also = key_write(caller, model.id, writes_key);
        self.finish_with::<CreateModelError>(caller, uow, OP, AuditTarget::Model(model.id), also)
            .await?;
        Ok(model)
    }

    /// A page of the organization's models, and how many there are.
    pub async fn list_models(
        &self,
        caller: &Caller,
        page: PageRequest<ModelSort>,
    ) -> Result<Page<Model>, ListModelsError> {
        let uow = self
            .begin_read::<ListModelsError>(caller, Action::ReadContent)
            .await?;
        Ok(uow.models().list(page).await?)
    }

    pub async fn get_model(&self, caller: &Caller, id: ModelId) -> Result<Model, GetModelError> {
        let uow = self
            .begin_read::<GetModelError>(caller, Action::ReadContent)
            .await?;
        Ok(uow.models().get(id).await?)
    }

    /// Changes a model. Writing or clearing the key is permitted as well; so is moving a
    /// stored key (a new endpoint, provider or model name while a key is stored), which the
    /// unit of work reads first, so another organization's id is a 404 there.
    pub async fn update_model(
        &self,
        caller: &Caller,
        id: ModelId,
        patch: ModelPatch,
    ) -> Result<Model, UpdateModelError> {
        const OP: Operation = Operation::UpdateModel;
        let writes_key = !matches!(patch.key, SecretPatch::Keep);
        let uow = self.begin_op::<UpdateModelError>(caller, OP).await?;
        let mut wider = Vec::new();
        if writes_key {
            wider.push(Operation::WriteModelKey);
        }
        // Where the stored key is sent: the endpoint, or without one the provider and the model
        // name (a provider resolves the address; a model name can be a URL). Moving it is as
        // sensitive as writing the key.
        let names_target = !matches!(patch.endpoint, Patch::Keep)
            || !matches!(patch.provider, Patch::Keep)
            || !matches!(patch.model_name, Patch::Keep);
        if names_target {
            let current = uow.models().get(id).await?;
            let moves = matches!(&patch.endpoint, Patch::Set(e) if *e != current.endpoint)
                || matches!(&patch.provider, Patch::Set(p) if *p != current.provider)
                || matches!(&patch.model_name, Patch::Set(m) if *m != current.model_name);
            if moves && current.key.is_set() {
                wider.push(Operation::RetargetModel);
            }
        }
        let uow = self.permit_also(caller, uow, &wider).await?;
        let model = uow.models().update(id, patch).await?;
        let also = key_write(caller, id, writes_key);
        self.finish_with::<UpdateModelError>(caller, uow, OP, AuditTarget::Model(id), also)
            .await?;
        Ok(model)
    }

    /// Marks a model deleted: it disappears from every read.
    pub async fn delete_model(&self, caller: &Caller, id: ModelId) -> Result<(), DeleteModelError> {
        const OP: Operation = Operation::DeleteModel;
        let uow = self.begin_op::<DeleteModelError>(caller, OP).await?;
        uow.models().soft_delete(id).await?;
        self.finish(caller, uow, OP, AuditTarget::Model(id)).await
    }
}
