//! The routes, one module per resource.

/// The answers to use-case errors of the common shape: a refusal as recorded, the store's
/// failure as it maps; with `not_found:`, also 404.
macro_rules! answers {
    (not_found: $($err:ident),+ $(,)?) => {$(
        impl From<$err> for crate::ApiError {
            fn from(err: $err) -> Self {
                match err {
                    $err::Refused(refused) => refused.into(),
                    $err::NotFound => crate::ApiError::new(crate::ErrorCode::NotFound),
                    $err::Store(err) => err.into(),
                }
            }
        }
    )+};
    ($($err:ident),+ $(,)?) => {$(
        impl From<$err> for crate::ApiError {
            fn from(err: $err) -> Self {
                match err {
                    $err::Refused(refused) => refused.into(),
                    $err::Store(err) => err.into(),
                }
            }
        }
    )+};
}

pub(crate) mod audit;
pub(crate) mod endpoints;
pub(crate) mod invitations;
pub(crate) mod list;
pub(crate) mod login;
pub(crate) mod models;
pub(crate) mod organizations;
pub(crate) mod projects;
pub(crate) mod session;
pub(crate) mod tokens;
pub(crate) mod users;

use actix_web::HttpResponse;
use domain::SecretSlot;
use ports::{Patch, SecretPatch};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{ApiError, ErrorCode};

/// A 400 naming the body field that was not valid.
pub(crate) fn invalid(field: &'static str) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest).with_field(field)
}

/// 201 with the created resource.
pub(crate) fn created(body: impl Serialize) -> HttpResponse {
    HttpResponse::Created().json(body)
}

/// For PATCH bodies: a field that is present, even as `null`, is `Some`; an absent one is
/// `None` (with `#[serde(default)]`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A required field of a PATCH body: absent keeps, a value is validated, `null` is refused.
pub(crate) fn patch_required<T, V, E>(
    field: &'static str,
    value: Option<Option<V>>,
    parse: impl FnOnce(V) -> Result<T, E>,
) -> Result<Patch<T>, ApiError> {
    match value {
        None => Ok(Patch::Keep),
        Some(None) => Err(invalid(field)),
        Some(Some(v)) => parse(v).map(Patch::Set).map_err(|_| invalid(field)),
    }
}

/// An optional field of a PATCH body: absent keeps, `null` clears, a value is validated.
pub(crate) fn patch_optional<T, V, E>(
    field: &'static str,
    value: Option<Option<V>>,
    parse: impl FnOnce(V) -> Result<T, E>,
) -> Result<Patch<Option<T>>, ApiError> {
    match value {
        None => Ok(Patch::Keep),
        Some(None) => Ok(Patch::Set(None)),
        Some(Some(v)) => parse(v)
            .map(|t| Patch::Set(Some(t)))
            .map_err(|_| invalid(field)),
    }
}

/// An optional field of a creation body, validated.
pub(crate) fn optional<T, V, E>(
    field: &'static str,
    value: Option<V>,
    parse: impl FnOnce(V) -> Result<T, E>,
) -> Result<Option<T>, ApiError> {
    value.map(parse).transpose().map_err(|_| invalid(field))
}

/// A required field of a creation body, validated.
pub(crate) fn required<T, V, E>(
    field: &'static str,
    value: V,
    parse: impl FnOnce(V) -> Result<T, E>,
) -> Result<T, ApiError> {
    parse(value).map_err(|_| invalid(field))
}

/// Whether a secret is set, and its hint.
pub(crate) fn slot(slot: &SecretSlot) -> (bool, Option<String>) {
    match slot {
        SecretSlot::Unset => (false, None),
        SecretSlot::Set { hint } => (true, Some(hint.as_str().to_owned())),
    }
}

/// A secret from a request body: never empty.
pub(crate) fn secret_value(field: &'static str, value: String) -> Result<SecretString, ApiError> {
    if value.trim().is_empty() {
        return Err(invalid(field));
    }
    Ok(SecretString::from(value))
}

/// A write to a secret field of a PATCH body: absent keeps, `null` clears.
pub(crate) fn secret_patch(
    field: &'static str,
    value: Option<Option<String>>,
) -> Result<SecretPatch, ApiError> {
    Ok(match value {
        None => SecretPatch::Keep,
        Some(None) => SecretPatch::Clear,
        Some(Some(v)) => SecretPatch::Set(secret_value(field, v)?),
    })
}
