//! The OpenID Connect client (Auth0 or any provider) behind the identity-provider port:
//! discovery, PKCE + state + nonce, code exchange, ID-token verification, JWKS refresh.
//!
//! Nothing has landed here yet: browser login is built on top of the authenticated API.
