use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::{
    Description, EndpointId, HttpUrl, Name, OrganizationId, ProjectId, RequestHeaders, SecretSlot,
};

/// The HTTP method used to call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// How the platform talks to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointProtocol {
    Rest,
    WebSocket,
}

/// How the platform authenticates to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    None,
    /// A static bearer token (`auth_token`).
    BearerToken,
    /// OAuth 2 client credentials (`client_id`, `client_secret`, `token_url`), whose
    /// access token is cached in `last_token` until `last_token_expires_at`.
    ClientCredentials,
}

macro_rules! string_enum {
    ($ty:ident, $err:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = crate::values::UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(crate::values::UnknownVariant($err)),
                }
            }
        }
    };
}

string_enum!(HttpMethod, "http method", {
    Get => "GET", Post => "POST", Put => "PUT", Patch => "PATCH", Delete => "DELETE",
});
string_enum!(EndpointProtocol, "protocol", { Rest => "REST", WebSocket => "WebSocket" });
string_enum!(AuthType, "auth type", {
    None => "none", BearerToken => "bearer_token", ClientCredentials => "client_credentials",
});

/// An LLM application under test, with the credentials the platform uses to call it.
///
/// The three secrets are write-only: an `Endpoint` only says whether each is set and shows
/// its hint. The plaintext travels on a separate, explicitly named path of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub organization_id: OrganizationId,
    pub project_id: Option<ProjectId>,
    pub name: Name,
    pub description: Option<Description>,
    pub url: HttpUrl,
    pub method: HttpMethod,
    pub protocol: EndpointProtocol,
    pub request_headers: RequestHeaders,
    /// JSON templates, kept as opaque JSON text: the HTTP edge checks that they parse and the
    /// database stores them as `jsonb`; no business rule looks inside.
    pub request_mapping: Option<String>,
    pub response_mapping: Option<String>,
    pub auth_type: AuthType,
    pub client_id: Option<String>,
    pub token_url: Option<HttpUrl>,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub auth_token: SecretSlot,
    pub client_secret: SecretSlot,
    pub last_token: SecretSlot,
    pub last_token_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_refuse_unknown_text() {
        for m in [
            HttpMethod::Get,
            HttpMethod::Post,
            HttpMethod::Put,
            HttpMethod::Patch,
            HttpMethod::Delete,
        ] {
            assert_eq!(m.as_str().parse::<HttpMethod>(), Ok(m));
        }
        assert!("CONNECT".parse::<HttpMethod>().is_err());
        assert!("get".parse::<HttpMethod>().is_err());
        assert_eq!(
            "WebSocket".parse::<EndpointProtocol>(),
            Ok(EndpointProtocol::WebSocket)
        );
        assert_eq!(
            "client_credentials".parse::<AuthType>(),
            Ok(AuthType::ClientCredentials)
        );
        assert!("basic".parse::<AuthType>().is_err());
    }
}
