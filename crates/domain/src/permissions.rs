//! Who may do what inside an organization. Pure functions over roles and ids; the callers
//! (use cases) fetch the facts, these rules decide.

use crate::{Role, UserId};

/// The acting user, as far as permissions are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub user_id: UserId,
    pub role: Role,
}

/// Something a member of an organization may want to read. What changes state is an
/// [`crate::Operation`], with its own declared policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the organization, its members, projects, endpoints and models.
    ReadContent,
    /// List and read one's own API tokens.
    ManageOwnTokens,
    /// Read and verify the organization's audit log.
    ReadAuditLog,
    /// List the organization's pending invitations.
    ReadInvitations,
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PermissionDenied {
    #[error("the action needs the {required} role")]
    InsufficientRole { required: Role },
    #[error("nobody may raise their own role")]
    SelfEscalation,
    #[error("the last owner of an organization cannot be demoted or removed")]
    LastOwner,
    #[error("only an owner may change or remove an owner, or make someone owner")]
    OwnerProtected,
}

const fn required_role(action: Action) -> Role {
    match action {
        Action::ReadContent | Action::ManageOwnTokens => Role::Member,
        Action::ReadAuditLog | Action::ReadInvitations => Role::Admin,
    }
}

/// Whether `actor` may perform `action` in their own organization.
pub fn authorize(actor: Actor, action: Action) -> Result<(), PermissionDenied> {
    let required = required_role(action);
    if actor.role >= required {
        Ok(())
    } else {
        Err(PermissionDenied::InsufficientRole { required })
    }
}

/// Whether `actor` may give `target` (who holds `current`) the role `new`, given how many
/// owners the organization has now.
///
/// Rules: nobody raises their own role; members change no roles; admins manage members and
/// admins but never touch or create owners; owners may do anything except leave the
/// organization without an owner.
pub fn authorize_role_change(
    actor: Actor,
    target: UserId,
    current: Role,
    new: Role,
    owner_count: u64,
) -> Result<(), PermissionDenied> {
    if target == actor.user_id && new > current {
        return Err(PermissionDenied::SelfEscalation);
    }
    if current == Role::Owner && new != Role::Owner && owner_count <= 1 {
        return Err(PermissionDenied::LastOwner);
    }
    if target == actor.user_id {
        // Stepping down (or staying) is always one's own choice.
        return Ok(());
    }
    match actor.role {
        Role::Member => Err(PermissionDenied::InsufficientRole {
            required: Role::Admin,
        }),
        Role::Admin if current == Role::Owner || new == Role::Owner => {
            Err(PermissionDenied::OwnerProtected)
        }
        Role::Admin | Role::Owner => Ok(()),
    }
}

/// Whether `actor` may remove `target` (who holds `target_role`) from the organization.
/// Removing oneself is leaving, which anyone but the last owner may do.
pub fn authorize_remove_user(
    actor: Actor,
    target: UserId,
    target_role: Role,
    owner_count: u64,
) -> Result<(), PermissionDenied> {
    if target_role == Role::Owner && owner_count <= 1 {
        return Err(PermissionDenied::LastOwner);
    }
    if target == actor.user_id {
        return Ok(());
    }
    match actor.role {
        Role::Member => Err(PermissionDenied::InsufficientRole {
            required: Role::Admin,
        }),
        Role::Admin if target_role == Role::Owner => Err(PermissionDenied::OwnerProtected),
        Role::Admin | Role::Owner => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn user(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(n))
    }

    fn actor(n: u128, role: Role) -> Actor {
        Actor {
            user_id: user(n),
            role,
        }
    }

    #[test]
    fn each_action_needs_its_role() {
        let table = [
            (Action::ReadContent, Role::Member),
            (Action::ManageOwnTokens, Role::Member),
            (Action::ReadAuditLog, Role::Admin),
            (Action::ReadInvitations, Role::Admin),
        ];
        for (action, required) in table {
            for role in [Role::Member, Role::Admin, Role::Owner] {
                let verdict = authorize(actor(1, role), action);
                if role >= required {
                    assert_eq!(verdict, Ok(()), "{role} may {action:?}");
                } else {
                    assert_eq!(
                        verdict,
                        Err(PermissionDenied::InsufficientRole { required }),
                        "{role} may not {action:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn nobody_raises_their_own_role() {
        for (from, to) in [
            (Role::Member, Role::Admin),
            (Role::Member, Role::Owner),
            (Role::Admin, Role::Owner),
        ] {
            assert_eq!(
                authorize_role_change(actor(1, from), user(1), from, to, 1),
                Err(PermissionDenied::SelfEscalation)
            );
        }
        // Stepping down is allowed while another owner remains.
        assert_eq!(
            authorize_role_change(actor(1, Role::Owner), user(1), Role::Owner, Role::Member, 2),
            Ok(())
        );
        assert_eq!(
            authorize_role_change(actor(1, Role::Admin), user(1), Role::Admin, Role::Member, 1),
            Ok(())
        );
    }

    #[test]
    fn the_last_owner_stays() {
        assert_eq!(
            authorize_role_change(actor(1, Role::Owner), user(1), Role::Owner, Role::Admin, 1),
            Err(PermissionDenied::LastOwner)
        );
        assert_eq!(
            authorize_remove_user(actor(1, Role::Owner), user(1), Role::Owner, 1),
            Err(PermissionDenied::LastOwner)
        );
        assert_eq!(
            authorize_remove_user(actor(1, Role::Owner), user(1), Role::Owner, 2),
            Ok(())
        );
    }

    #[test]
    fn members_manage_nobody() {
        let member = actor(1, Role::Member);
        assert_eq!(
            authorize_role_change(member, user(2), Role::Member, Role::Member, 1),
            Err(PermissionDenied::InsufficientRole {
                required: Role::Admin
            })
        );
        assert_eq!(
            authorize_remove_user(member, user(2), Role::Member, 1),
            Err(PermissionDenied::InsufficientRole {
                required: Role::Admin
            })
        );
        assert_eq!(
            authorize_remove_user(member, user(1), Role::Member, 1),
            Ok(()),
            "leaving"
        );
    }

    #[test]
    fn admins_manage_members_and_admins_but_not_owners() {
        let admin = actor(1, Role::Admin);
        assert_eq!(
            authorize_role_change(admin, user(2), Role::Member, Role::Admin, 1),
            Ok(())
        );
        assert_eq!(
            authorize_role_change(admin, user(2), Role::Admin, Role::Member, 1),
            Ok(())
        );
        assert_eq!(
            authorize_role_change(admin, user(2), Role::Member, Role::Owner, 1),
            Err(PermissionDenied::OwnerProtected)
        );
        assert_eq!(
            authorize_role_change(admin, user(2), Role::Owner, Role::Member, 2),
            Err(PermissionDenied::OwnerProtected)
        );
        assert_eq!(
            authorize_remove_user(admin, user(2), Role::Admin, 1),
            Ok(())
        );
        assert_eq!(
            authorize_remove_user(admin, user(2), Role::Owner, 2),
            Err(PermissionDenied::OwnerProtected)
        );
    }

    #[test]
    fn owners_manage_everyone_but_keep_an_owner() {
        let owner = actor(1, Role::Owner);
        assert_eq!(
            authorize_role_change(owner, user(2), Role::Member, Role::Owner, 1),
            Ok(())
        );
        assert_eq!(
            authorize_role_change(owner, user(2), Role::Owner, Role::Member, 2),
            Ok(())
        );
        assert_eq!(
            authorize_remove_user(owner, user(2), Role::Owner, 2),
            Ok(())
        );
        assert_eq!(
            authorize_remove_user(owner, user(2), Role::Member, 1),
            Ok(())
        );
    }
}
