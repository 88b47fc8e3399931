//! One declared policy per state-changing operation: who may do it, whether it needs a fresh
//! interactive login, whether an API token may do it, and which audit event it writes. The
//! HTTP edge looks every operation up here through one path; a test walks the API's document
//! and fails on an unsafe operation that has no entry.

use crate::{AuditAction, Role};

/// Who may attempt an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Anyone: the operation is how a credential is obtained.
    Anonymous,
    /// Any authenticated user, in an organization or not (founding one, logging out).
    Authenticated,
    /// A member of an organization holding at least this role; the operation acts in it.
    Member(Role),
}

/// The declared policy of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub standing: Standing,
    /// Needs an interactive login within the configured age (an API token never is one).
    pub fresh_login: bool,
    /// Whether a program's API token may do it at all.
    pub api_tokens: bool,
    /// The event the operation writes in its own transaction.
    pub event: AuditAction,
}

macro_rules! operations {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal:
        $standing:expr, fresh: $fresh:literal, api_tokens: $tokens:literal, $event:ident; )*) => {
        /// Every state-changing operation of the API. The name of each is the `operationId`
        /// of its route in the API's document (a route whose body can widen what it does
        /// names the wider operations too, e.g. a credential written by an update).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $( $(#[$doc])* $variant, )*
        }

        impl Operation {
            /// Every operation, in declaration order.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant),*];

            /// The stable name: the `operationId` of the route, where there is one.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Operation::$variant => $name, )*
                }
            }

            /// The declared policy.
            pub const fn policy(self) -> Policy {
                match self {
                    $( Operation::$variant => Policy {
                        standing: $standing,
                        fresh_login: $fresh,
                        api_tokens: $tokens,
                        event: AuditAction::$event,
                    }, )*
                }
            }
        }
    };
}

use Standing::{Anonymous, Authenticated, Member};

operations! {
    /// Founding an organization (a user who has none).
    FoundOrganization = "create_organization":
        Authenticated, fresh: false, api_tokens: false, OrganizationCreated;
    UpdateOrganization = "update_organization":
        Member(Role::Admin), fresh: false, api_tokens: true, OrganizationUpdated;
    DeleteOrganization = "delete_organization":
        Member(Role::Owner), fresh: true, api_tokens: false, OrganizationDeleted;
    LeaveOrganization = "leave_organization":
        Member(Role::Member), fresh: true, api_tokens: false, UserLeft;
    /// Inviting a person, whatever the role offered.
    InviteUser = "invite_user":
        Member(Role::Admin), fresh: true, api_tokens: false, UserInvited;
    /// Withdrawing a pending invitation.
    RevokeInvitation = "revoke_invitation":
        Member(Role::Admin), fresh: false, api_tokens: true, InvitationRevoked;
    /// Joining the organization of an invitation addressed to one's verified address.
    AcceptInvitation = "accept_invitation":
        Authenticated, fresh: true, api_tokens: false, InvitationAccepted;
    DeclineInvitation = "decline_invitation":
        Authenticated, fresh: false, api_tokens: false, InvitationDeclined;
    ChangeRole = "change_role":
        Member(Role::Member), fresh: true, api_tokens: false, UserRoleChanged;
    RemoveUser = "remove_user":
        Member(Role::Member), fresh: true, api_tokens: false, UserRemoved;
    CreateProject = "create_project":
        Member(Role::Member), fresh: false, api_tokens: true, ProjectCreated;
    UpdateProject = "update_project":
        Member(Role::Member), fresh: false, api_tokens: true, ProjectUpdated;
    DeleteProject = "delete_project":
        Member(Role::Member), fresh: false, api_tokens: true, ProjectDeleted;
    CreateEndpoint = "create_endpoint":
        Member(Role::Member), fresh: false, api_tokens: true, EndpointCreated;
    UpdateEndpoint = "update_endpoint":
        Member(Role::Member), fresh: false, api_tokens: true, EndpointUpdated;
    DeleteEndpoint = "delete_endpoint":
        Member(Role::Member), fresh: false, api_tokens: true, EndpointDeleted;
    /// Writing or clearing an endpoint's `auth_token` or `client_secret`.
    WriteEndpointCredential = "write_endpoint_credential":
        Member(Role::Member), fresh: true, api_tokens: false, SecretWritten;
    /// Changing where an endpoint's stored credential is sent (`url`, `token_url`).
    RetargetEndpoint = "retarget_endpoint":
        Member(Role::Member), fresh: true, api_tokens: false, EndpointUpdated;
    CreateModel = "create_model":
        Member(Role::Member), fresh: false, api_tokens: true, ModelCreated;
    UpdateModel = "update_model":
        Member(Role::Member), fresh: false, api_tokens: true, ModelUpdated;
    DeleteModel = "delete_model":
        Member(Role::Member), fresh: false, api_tokens: true, ModelDeleted;
    /// Writing or clearing a model's `key`.
    WriteModelKey = "write_model_key":
        Member(Role::Member), fresh: true, api_tokens: false, SecretWritten;
    /// Changing where a model's stored key is sent (`endpoint`, and `provider` or
    /// `model_name`, which decide it where no endpoint is set).
    RetargetModel = "retarget_model":
        Member(Role::Member), fresh: true, api_tokens: false, ModelUpdated;
    CreateApiToken = "create_token":
        Member(Role::Member), fresh: true, api_tokens: false, TokenCreated;
    RenameApiToken = "rename_token":
        Member(Role::Member), fresh: false, api_tokens: true, TokenRenamed;
    RefreshApiToken = "refresh_token":
        Member(Role::Member), fresh: true, api_tokens: false, TokenRefreshed;
    RevokeApiToken = "revoke_token":
        Member(Role::Member), fresh: false, api_tokens: true, TokenRevoked;
    /// Ending the presented access token or browser session.
    Logout = "logout":
        Authenticated, fresh: false, api_tokens: false, LoggedOut;
    /// A short-lived access token for the browser session that asks.
    MintSessionToken = "session_token":
        Authenticated, fresh: false, api_tokens: false, AuthenticationSucceeded;
    /// The development profile's login without an identity provider (no such route elsewhere).
    LocalLogin = "local_login":
        Anonymous, fresh: false, api_tokens: false, AuthenticationSucceeded;
}

impl Operation {
    /// The operation named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|op| op.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found_again() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(*op));
        }
        let mut names: Vec<_> = Operation::ALL.iter().map(|op| op.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
    }

    #[test]
    fn what_hands_out_power_or_secrets_needs_a_fresh_login_and_no_api_token() {
        use Operation::*;
        for op in [
            InviteUser,
            ChangeRole,
            RemoveUser,
            DeleteOrganization,
            WriteEndpointCredential,
            RetargetEndpoint,
            WriteModelKey,
            RetargetModel,
            CreateApiToken,
            RefreshApiToken,
        ] {
            let policy = op.policy();
            assert!(policy.fresh_login && !policy.api_tokens, "{op:?}");
        }
        // Every fresh-login operation refuses API tokens (which are never fresh).
        for op in Operation::ALL {
            let policy = op.policy();
            assert!(!policy.fresh_login || !policy.api_tokens, "{op:?}");
        }
    }
}
