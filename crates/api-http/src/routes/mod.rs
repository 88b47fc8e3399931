//! The routes, one module per resource.

pub(crate) mod list;
pub(crate) mod session;
pub(crate) mod tokens;

use crate::{ApiError, ErrorCode};

/// A 400 naming the body field that was not valid.
pub(crate) fn invalid(field: &'static str) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest).with_field(field)
}
