//! The key ring against the Fernet specification's test vectors and against Python's
//! `cryptography.fernet`. One test binary for the crate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests stop at the first surprise

mod keys;
mod python;
mod vectors;
