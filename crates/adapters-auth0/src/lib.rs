//! The OpenID Connect client (Auth0 or any provider) behind the identity-provider port, with
//! `openidconnect`: discovery, the authorization-code flow with PKCE (S256), `state` and
//! `nonce`, one code exchange, and the ID token verified (signature against the provider's
//! keys, exact issuer, audience = client id, expiry, nonce, `at_hash` when present, `auth_time`
//! against `max_age` when one was asked). When the ID token does not carry the e-mail and its
//! verification (a code-flow provider may keep them for UserInfo, OpenID Connect Core 5.4),
//! the UserInfo endpoint is asked with the access token, and its answer must be about the ID
//! token's subject. The provider's keys are read again when a token names a key they lack (at
//! most every few seconds) and periodically, so a key rotation at the provider needs no
//! restart. The HTTP client follows no redirects.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGrantType, CoreIdTokenClaims, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AdditionalProviderMetadata, AuthorizationCode, ClaimsVerificationError,
    ClientId, ClientSecret, CsrfToken, IssuerUrl, JsonWebKeySet, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl, Scope,
    SignatureVerificationError, SubjectIdentifier, TokenResponse, UserInfoError,
};
use ports::{
    Clock, IdentityProvider, IdentityProviderError, LoginFinish, LoginStart, VerifiedLogin,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

/// The discovery fields beyond the core set that logging out needs.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct LogoutMetadata {
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

impl AdditionalProviderMetadata for LogoutMetadata {}

type Metadata = ProviderMetadata<
    LogoutMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A client built from discovery: authorization and token endpoints known, user info maybe.
type OidcClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// How to reach the provider and who we are to it.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer, exactly as the provider's tokens name it (Auth0's ends with `/`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// This server's callback (`…/auth/callback`), registered at the provider.
    pub redirect_uri: String,
    /// Auth0: the API the access token is for (`audience`).
    pub audience: Option<String>,
    /// Auth0 Organizations: the organization to log in to; the ID token's `org_id` must
    /// name it.
    pub organization: Option<String>,
    /// Auth0: log out at `/v2/logout` when discovery names no `end_session_endpoint`.
    pub auth0_logout: bool,
    /// How often the discovery document and keys are read again.
    pub refresh_every: StdDuration,
    /// The shortest time between two reads forced by a token signed with an unknown key.
    pub unknown_key_cooldown: StdDuration,
    /// How long a request to the provider may take.
    pub timeout: StdDuration,
}

/// What was last read from the provider.
#[derive(Debug, Clone)]
struct Discovered {
    metadata: Metadata,
    read_at: Instant,
}

/// The provider behind [`IdentityProvider`].
pub struct OidcProvider {
    settings: OidcSettings,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    discovered: RwLock<Option<Discovered>>,
    /// When keys were last read because of an unknown key.
    forced_refresh: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.settings.issuer)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

/// Settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum OidcConfigError {
    #[error("the issuer is not a URL")]
    Issuer,
    #[error("the redirect URI is not a URL")]
    RedirectUri,
    #[error("the HTTP client could not be built")]
    Http(#[source] reqwest::Error),
}

fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> IdentityProviderError {
    IdentityProviderError::Unavailable(Box::new(err))
}

const fn refused(reason: &'static str) -> IdentityProviderError {
    IdentityProviderError::Refused { reason }
}

/// The stable word for a verification failure.
fn verification_reason(err: &ClaimsVerificationError) -> &'static str {
    match err {
        ClaimsVerificationError::Expired(_) => "expired",
        ClaimsVerificationError::InvalidAudience(_) => "audience",
        ClaimsVerificationError::InvalidAuthTime(_) => "auth_time",
        ClaimsVerificationError::InvalidIssuer(_) => "issuer",
        ClaimsVerificationError::InvalidNonce(_) => "nonce",
        ClaimsVerificationError::InvalidSubject(_) => "subject",
        ClaimsVerificationError::SignatureVerification(_) => "signature",
        _ => "invalid",
    }
}

impl OidcProvider {
    pub fn new(settings: OidcSettings, clock: Arc<dyn Clock>) -> Result<Self, OidcConfigError> {
        let issuer =
            IssuerUrl::new(settings.issuer.clone()).map_err(|_| OidcConfigError::Issuer)?;
        let redirect = RedirectUrl::new(settings.redirect_uri.clone())
            .map_err(|_| OidcConfigError::RedirectUri)?;
        let http = reqwest::Client::builder()
            // Following redirects would open the client to server-side request forgery.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .build()
            .map_err(OidcConfigError::Http)?;
        Ok(Self {
            settings,
            issuer,
            redirect,
            http,
            clock,
            discovered: RwLock::new(None),
            forced_refresh: Mutex::new(None),
        })
    }

    /// Reads the discovery document and keys.
    async fn discover(&self) -> Result<Discovered, IdentityProviderError> {
        let metadata = Metadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "the identity provider's discovery failed");
                unavailable(e)
            })?;
        Ok(Discovered {
            metadata,
            read_at: Instant::now(),
        })
    }

    /// The provider's metadata, read again when older than the refresh period; the last
    /// good one while the provider cannot be reached.
    async fn metadata(&self) -> Result<Metadata, IdentityProviderError> {
        if let Some(d) = self.discovered.read().await.as_ref()
            && d.read_at.elapsed() < self.settings.refresh_every
        {
            return Ok(d.metadata.clone());
        }
        let mut slot = self.discovered.write().await;
        match (self.discover().await, slot.as_ref()) {
            (Ok(fresh), _) => {
                let metadata = fresh.metadata.clone();
                *slot = Some(fresh);
                Ok(metadata)
            }
            (Err(_), Some(stale)) => Ok(stale.metadata.clone()),
            (Err(err), None) => Err(err),
        }
    }

    /// Reads the keys again for a token signed with a key they lack, unless that was done a
    /// moment ago; the metadata with the keys now known.
    async fn refresh_keys(&self, metadata: Metadata) -> Result<Metadata, IdentityProviderError> {
        let mut last = self.forced_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.settings.unknown_key_cooldown) {
            return Err(refused("unknown_key"));
        }
        *last = Some(Instant::now());
        let keys = JsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http)
            .await
            .map_err(unavailable)?;
        tracing::info!(
            keys = keys.keys().len(),
            "the identity provider's keys were read again"
        );
        let metadata = metadata.set_jwks(keys);
        let mut slot = self.discovered.write().await;
        *slot = Some(Discovered {
            metadata: metadata.clone(),
            read_at: Instant::now(),
        });
        Ok(metadata)
    }

    fn client(&self, metadata: Metadata) -> OidcClient {
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(
                self.settings.client_secret.expose_secret().to_owned(),
            )),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Verifies the ID token of `response` against `metadata`'s keys.
    fn verify(
        &self,
        metadata: Metadata,
        response: &openidconnect::core::CoreTokenResponse,
        nonce: &Nonce,
        max_age: Option<Duration>,
    ) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
        let client = self.client(metadata);
        let id_token = response
            .id_token()
            .ok_or_else(|| ClaimsVerificationError::Other("no ID token".to_owned()))?;
        let clock = Arc::clone(&self.clock);
        let now = self.clock.now();
        let verifier = client
            .id_token_verifier()
            .set_time_fn(move || clock.now())
            .set_auth_time_verifier_fn(move |auth_time: Option<DateTime<Utc>>| {
                match (max_age, auth_time) {
                    (None, _) => Ok(()),
                    (Some(_), None) => Err("no auth_time for a login with max_age".to_owned()),
                    // A minute of clock skew either way.
                    (Some(max), Some(at)) if now - at <= max + Duration::minutes(1) => Ok(()),
                    (Some(_), Some(_)) => {
                        Err("the authentication is older than max_age".to_owned())
                    }
                }
            });
        let claims = id_token.claims(&verifier, nonce)?.clone();
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(ClaimsVerificationError::SignatureVerification)?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(ClaimsVerificationError::SignatureVerification)?;
            let actual = AccessTokenHash::from_token(response.access_token(), alg, key)
                .map_err(|e| ClaimsVerificationError::Other(format!("at_hash: {e}")))?;
            if actual != *expected {
                return Err(ClaimsVerificationError::Other("at_hash".to_owned()));
            }
        }
        if let Some(organization) = &self.settings.organization {
            let org_id = org_id(&id_token.to_string());
            if org_id.as_deref() != Some(organization.as_str()) {
                return Err(ClaimsVerificationError::Other("organization".to_owned()));
            }
        }
        Ok(claims)
    }

    /// Asks the UserInfo endpoint with the code exchange's access token; `None` when discovery
    /// names no such endpoint. The answer MUST be about `subject` (else `userinfo_subject`)
    /// and parse, or verify when it is a signed JWT (else `userinfo`).
    async fn user_info(
        &self,
        metadata: Metadata,
        response: &openidconnect::core::CoreTokenResponse,
        subject: &SubjectIdentifier,
    ) -> Result<Option<CoreUserInfoClaims>, IdentityProviderError> {
        let client = self.client(metadata);
        let Ok(request) = client.user_info(response.access_token().clone(), Some(subject.clone()))
        else {
            return Ok(None);
        };
        let claims: CoreUserInfoClaims = request.request_async(&self.http).await.map_err(
            |err| match err {
                UserInfoError::ClaimsVerification(ClaimsVerificationError::InvalidSubject(_)) => {
                    tracing::warn!(
                        error = %err,
                        "the provider's UserInfo answer is about another subject"
                    );
                    refused("userinfo_subject")
                }
                UserInfoError::Request(_) => unavailable(err),
                UserInfoError::Response(status, _, _) if status.is_server_error() => {
                    unavailable(err)
                }
                other => {
                    tracing::info!(error = %other, "the provider's UserInfo answer was refused");
                    refused("userinfo")
                }
            },
        )?;
        Ok(Some(claims))
    }
}

/// The person of a verified ID token, completed from a UserInfo answer about the same subject
/// when there is one. The ID token's claims come first; an e-mail address and its verification
/// are taken from the same source, never the address from one and the verification from the
/// other: the ID token's address is verified by UserInfo only when UserInfo names the same
/// address. An address nobody says is verified is unverified.
fn verified_login(id: &CoreIdTokenClaims, info: Option<&CoreUserInfoClaims>) -> VerifiedLogin {
    let info_email = info.and_then(|i| i.email()).map(|e| e.as_str());
    let info_verified = info.and_then(|i| i.email_verified()).unwrap_or(false);
    let (email, email_verified) = match id.email().map(|e| e.as_str()) {
        Some(email) => (
            Some(email),
            id.email_verified()
                .unwrap_or(info_email == Some(email) && info_verified),
        ),
        None => (info_email, info_email.is_some() && info_verified),
    };
    let name = id
        .name()
        .and_then(|n| n.get(None))
        .or_else(|| info.and_then(|i| i.name()).and_then(|n| n.get(None)));
    VerifiedLogin {
        subject: id.subject().as_str().to_owned(),
        email: email.map(str::to_owned),
        email_verified,
        name: name.map(|n| n.as_str().to_owned()),
        // A provider that does not say when the person authenticated: never fresh.
        auth_time: id.auth_time(),
    }
}

/// The `org_id` claim of a JWT whose signature has been verified.
fn org_id(jwt: &str) -> Option<String> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("org_id")?.as_str().map(str::to_owned)
}

#[async_trait]
impl IdentityProvider for OidcProvider {
    async fn begin(&self, max_age: Option<Duration>) -> Result<LoginStart, IdentityProviderError> {
        let client = self.client(self.metadata().await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .set_pkce_challenge(challenge);
        if let Some(max_age) = max_age.and_then(|m| m.to_std().ok()) {
            request = request.set_max_age(max_age);
        }
        if let Some(audience) = &self.settings.audience {
            request = request.add_extra_param("audience", audience.clone());
        }
        if let Some(organization) = &self.settings.organization {
            request = request.add_extra_param("organization", organization.clone());
        }
        let (url, state, nonce) = request.url();
        Ok(LoginStart {
            authorize_url: url.to_string(),
            state: SecretString::from(state.secret().clone()),
            nonce: SecretString::from(nonce.secret().clone()),
            pkce_verifier: SecretString::from(verifier.secret().clone()),
        })
    }

    async fn finish(&self, finish: LoginFinish) -> Result<VerifiedLogin, IdentityProviderError> {
        use openidconnect::RequestTokenError;
        let metadata = self.metadata().await?;
        let client = self.client(metadata.clone());
        let response = client
            .exchange_code(AuthorizationCode::new(
                finish.code.expose_secret().to_owned(),
            ))
            .map_err(unavailable)?
            .set_pkce_verifier(PkceCodeVerifier::new(
                finish.pkce_verifier.expose_secret().to_owned(),
            ))
            .request_async(&self.http)
            .await
            .map_err(|err| match err {
                RequestTokenError::ServerResponse(response) => {
                    tracing::info!(error = %response.error(), "the provider refused the code");
                    refused("code")
                }
                RequestTokenError::Parse(_, _) => refused("token_response"),
                other => unavailable(other),
            })?;
        let nonce = Nonce::new(finish.nonce.expose_secret().to_owned());
        let verified = match self.verify(metadata.clone(), &response, &nonce, finish.max_age) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let metadata = self.refresh_keys(metadata).await?;
                self.verify(metadata.clone(), &response, &nonce, finish.max_age)
                    .map(|claims| (claims, metadata))
            }
            other => other.map(|claims| (claims, metadata)),
        };
        let (claims, metadata) = verified.map_err(|err| {
            let reason = match &err {
                ClaimsVerificationError::Other(what) if what == "at_hash" => "at_hash",
                ClaimsVerificationError::Other(what) if what == "organization" => "organization",
                ClaimsVerificationError::Other(what) if what == "no ID token" => "no_id_token",
                other => verification_reason(other),
            };
            tracing::info!(reason, error = %err, "the provider's ID token was refused");
            refused(reason)
        })?;
        // Only when the ID token leaves the e-mail out: no extra round trip otherwise.
        let info = if claims.email().is_some() && claims.email_verified().is_some() {
            None
        } else {
            self.user_info(metadata, &response, claims.subject())
                .await?
        };
        Ok(verified_login(&claims, info.as_ref()))
    }

    async fn logout_url(&self, return_to: &str) -> Option<String> {
        // What discovery last said, without asking again: logging out never waits for a
        // provider that is slow or down.
        let endpoint = self.discovered.read().await.as_ref().and_then(|d| {
            d.metadata
                .additional_metadata()
                .end_session_endpoint
                .clone()
        });
        let client_id = self.settings.client_id.as_str();
        if let Some(endpoint) = &endpoint {
            let mut url = url::Url::parse(endpoint).ok()?;
            url.query_pairs_mut()
                .append_pair("client_id", client_id)
                .append_pair("post_logout_redirect_uri", return_to);
            return Some(url.to_string());
        }
        if self.settings.auth0_logout {
            let mut url = url::Url::parse(&self.settings.issuer)
                .ok()?
                .join("v2/logout")
                .ok()?;
            url.query_pairs_mut()
                .append_pair("client_id", client_id)
                .append_pair("returnTo", return_to);
            return Some(url.to_string());
        }
        None
    }
}
