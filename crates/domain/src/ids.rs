use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// An identifier string that is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid identifier")]
pub struct IdParseError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(transparent))]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID that the caller generated (the core draws no randomness).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only the canonical hyphenated form: one spelling per identifier.
                if s.len() != 36 {
                    return Err(IdParseError);
                }
                Uuid::parse_str(s).map(Self).map_err(|_| IdParseError)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

id_type!(
    /// Identifies an organization, the unit of tenancy.
    OrganizationId
);
id_type!(
    /// Identifies a user.
    UserId
);
id_type!(
    /// Identifies a project of an organization.
    ProjectId
);
id_type!(
    /// Identifies an endpoint (an LLM application under test).
    EndpointId
);
id_type!(
    /// Identifies a model (an LLM provider configuration).
    ModelId
);
id_type!(
    /// Identifies a user's API token.
    ApiTokenId
);
id_type!(
    /// Identifies an audit event.
    AuditEventId
);
id_type!(
    /// Identifies an invitation into an organization.
    InvitationId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_canonical_form_only() {
        let id: ProjectId = "0191d6a4-7f3c-7cc2-9b59-3a4c2f0e8d11".parse().unwrap();
        assert_eq!(id.to_string(), "0191d6a4-7f3c-7cc2-9b59-3a4c2f0e8d11");
        assert_eq!("".parse::<ProjectId>(), Err(IdParseError));
        assert_eq!("not-a-uuid".parse::<ProjectId>(), Err(IdParseError));
        assert_eq!(
            "0191d6a47f3c7cc29b593a4c2f0e8d11".parse::<ProjectId>(),
            Err(IdParseError),
            "the simple form is refused so that one id has one spelling"
        );
        assert_eq!(
            "{0191d6a4-7f3c-7cc2-9b59-3a4c2f0e8d11}".parse::<ProjectId>(),
            Err(IdParseError)
        );
    }
}
