//! Cryptography of the platform: the Fernet field cipher and key ring, HS256 JWTs, API-token
//! generation and digests, constant-time comparison.
//!
//! Nothing has landed here yet: the foundation needs no cryptography of its own. The field
//! cipher arrives with the encryption work, JWTs and API tokens with the authenticated API.
