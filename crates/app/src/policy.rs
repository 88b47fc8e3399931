//! The one path by which an operation is allowed: its declared policy decides, and every
//! refusal is an audit event.

use domain::{Action, AuditAction, AuditOutcome, Operation, PermissionDenied, Standing};
use ports::{RefusalReason, TenantScope, UnitOfWork};

use crate::{App, AuthMethod, Caller};

/// Why a caller may not do what they asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The operation is not for API tokens.
    ApiTokenNotAllowed,
    /// The operation acts in an organization and the caller belongs to none.
    NoOrganization,
    /// The caller's role, or a rule of the organization, forbids it.
    Permission(PermissionDenied),
    /// The operation needs a login more recent than the caller's, no older than `max_age`
    /// (an API token is never one).
    StaleLogin { max_age: chrono::Duration },
    /// The credential, checked again when the change's work began (its body is read after
    /// the first check), was refused for this reason.
    Credential(RefusalReason),
    /// The caller's user, membership or role changed between the check of their credential
    /// and the work of their change: the change was permitted to someone they no longer are.
    StandingChanged,
}

impl Denial {
    /// The reason the audit log records.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::ApiTokenNotAllowed => "api_token_not_allowed",
            Self::NoOrganization => "no_organization",
            Self::Permission(PermissionDenied::InsufficientRole { .. }) => "insufficient_role",
            Self::Permission(PermissionDenied::SelfEscalation) => "self_escalation",
            Self::Permission(PermissionDenied::LastOwner) => "last_owner",
            Self::Permission(PermissionDenied::OwnerProtected) => "owner_protected",
            Self::StaleLogin { .. } => "stale_authentication",
            Self::Credential(reason) => reason.as_str(),
            Self::StandingChanged => "standing_changed",
        }
    }
}

/// A refusal, already recorded in the audit log (or logged, if the log could not be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("refused: {}", .denial.reason())]
pub struct Refused {
    pub denial: Denial,
}

impl App {
    /// What the declared policy of `op` says of `caller`, recording nothing: the scope to act
    /// in (`None` for an operation that needs no organization), or why not. An API token is
    /// refused where the policy says so, then the standing (a member's role), then the
    /// freshness of the login.
    pub fn judge(&self, caller: &Caller, op: Operation) -> Result<Option<TenantScope>, Denial> {
        let policy = op.policy();
        let principal = caller.principal();
        if !policy.api_tokens && principal.method() == AuthMethod::ApiToken {
            return Err(Denial::ApiTokenNotAllowed);
        }
        let scope = match policy.standing {
            Standing::Anonymous | Standing::Authenticated => None,
            Standing::Member(required) => {
                let (Some(actor), Some(scope)) = (principal.actor(), principal.tenant_scope())
                else {
                    return Err(Denial::NoOrganization);
                };
                if actor.role < required {
                    return Err(Denial::Permission(PermissionDenied::InsufficientRole {
                        required,
                    }));
                }
                Some(scope)
            }
        };
        if policy.fresh_login && !self.is_fresh(caller) {
            return Err(Denial::StaleLogin {
                max_age: self.fresh_login_max_age,
            });
        }
        Ok(scope)
    }

    /// Whether the caller logged in interactively within the configured age. An API token is
    /// never fresh, and neither is a credential that does not say when its login was.
    pub fn is_fresh(&self, caller: &Caller) -> bool {
        let principal = caller.principal();
        matches!(principal.method(), AuthMethod::Jwt | AuthMethod::Session)
            && principal
                .auth_time()
                .is_some_and(|at| self.clock.now() - at <= self.fresh_login_max_age)
    }

    /// Records `denial` of `caller` in their organization's audit log (the system chain for a
    /// caller without one) and returns it as a refusal.
    pub async fn refuse(&self, caller: &Caller, denial: Denial) -> Refused {
        // Nothing is done for a refused caller: the kept transaction ends before the store is
        // reached again.
        caller.release();
        let reason = denial.reason();
        tracing::info!(reason, "access denied");
        let mut event = match denial {
            Denial::Credential(_) => {
                caller.event(AuditAction::AuthenticationFailed, AuditOutcome::Failure)
            }
            _ => caller.event(AuditAction::AccessDenied, AuditOutcome::Denied),
        };
        event.reason = Some(reason.to_owned());
        let organization = caller.principal().membership().map(|m| m.organization_id);
        if let Err(err) = self.audit_log.unscoped_record(organization, event).await {
            tracing::error!(error = %err, "the denial could not be recorded");
        }
        Refused { denial }
    }

    /// [`App::judge`], recording a refusal.
    pub async fn permit(
        &self,
        caller: &Caller,
        op: Operation,
    ) -> Result<Option<TenantScope>, Refused> {
        match self.judge(caller, op) {
            Ok(scope) => Ok(scope),
            Err(denial) => Err(self.refuse(caller, denial).await),
        }
    }

    /// [`App::permit`] for an operation inside the caller's organization: its scope.
    pub async fn permit_in(&self, caller: &Caller, op: Operation) -> Result<TenantScope, Refused> {
        match self.permit(caller, op).await? {
            Some(scope) => Ok(scope),
            None => match caller.principal().tenant_scope() {
                Some(scope) => Ok(scope),
                None => Err(self.refuse(caller, Denial::NoOrganization).await),
            },
        }
    }

    /// The wider operations a request turned out to need once its unit of work has read the
    /// facts (a credential written by an update, a stored secret's target moved): each must be
    /// permitted too. A refusal closes the unit of work, unchanged, before it is recorded.
    pub async fn permit_also(
        &self,
        caller: &Caller,
        uow: Box<dyn UnitOfWork>,
        ops: &[Operation],
    ) -> Result<Box<dyn UnitOfWork>, Refused> {
        for op in ops {
            if let Err(denial) = self.judge(caller, *op) {
                drop(uow);
                return Err(self.refuse(caller, denial).await);
            }
        }
        Ok(uow)
    }

    /// The caller's scope for a read or an own-resource `action`, if it is theirs to do.
    pub async fn permit_action(
        &self,
        caller: &Caller,
        action: Action,
    ) -> Result<TenantScope, Refused> {
        let principal = caller.principal();
        // Both come from the membership: a caller without one has neither.
        let (Some(actor), Some(scope)) = (principal.actor(), principal.tenant_scope()) else {
            return Err(self.refuse(caller, Denial::NoOrganization).await);
        };
        match domain::authorize(actor, action) {
            Ok(()) => Ok(scope),
            Err(denied) => Err(self.refuse(caller, Denial::Permission(denied)).await),
        }
    }
}
