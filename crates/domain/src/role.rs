use std::fmt;
use std::str::FromStr;

/// A user's role inside their organization. Ordered: `Member < Admin < Owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Role {
    Member,
    Admin,
    Owner,
}

/// A role name that is not one of `owner`, `admin`, `member`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a role is one of owner, admin, member")]
pub struct RoleParseError;

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = RoleParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "member" => Ok(Self::Member),
            "admin" => Ok(Self::Admin),
            "owner" => Ok(Self::Owner),
            _ => Err(RoleParseError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_order() {
        for role in [Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!(Role::Member < Role::Admin && Role::Admin < Role::Owner);
        assert_eq!("Owner".parse::<Role>(), Err(RoleParseError));
        assert_eq!("superuser".parse::<Role>(), Err(RoleParseError));
    }
}
