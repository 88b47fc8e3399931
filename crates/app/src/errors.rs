//! The shape most use cases' errors share.

/// Declares a use case's error enum: `Refused` by the policy (already recorded), or the
/// `Store` failed. With `not_found`, also `NotFound`: no such resource in the caller's
/// organization (one of another organization looks the same), which the store's own
/// `NotFound` becomes.
macro_rules! use_case_error {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        pub enum $name {
            #[error(transparent)]
            Refused(#[from] $crate::Refused),
            #[error(transparent)]
            Store(#[from] ports::StoreError),
        }
    };
    ($(#[$doc:meta])* $name:ident, not_found) => {
        $(#[$doc])*
        #[derive(Debug, thiserror::Error)]
        pub enum $name {
            #[error(transparent)]
            Refused(#[from] $crate::Refused),
            #[error("not found")]
            NotFound,
            #[error(transparent)]
            Store(ports::StoreError),
        }

        impl From<ports::StoreError> for $name {
            fn from(err: ports::StoreError) -> Self {
                match err {
                    ports::StoreError::NotFound => Self::NotFound,
                    err => Self::Store(err),
                }
            }
        }
    };
}

pub(crate) use use_case_error;
