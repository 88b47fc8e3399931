//! TLS termination with rustls (ring provider): TLS 1.3 and 1.2 only, the provider's modern
//! AEAD suites in the server's order of preference (not the client's), HTTP/1.1 by ALPN. The
//! certificate chain and key come from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ConfigError, TlsArgs};

/// The server's TLS configuration, or `None` when TLS is not configured. Both files or
/// neither.
pub(crate) fn server_config(args: &TlsArgs) -> Result<Option<rustls::ServerConfig>, ConfigError> {
    let (cert, key) = match (&args.tls_cert_file, &args.tls_key_file) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => return Err(ConfigError::TlsIncomplete),
    };
    let chain = certificates(cert, "TLS_CERT_FILE")?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|_| ConfigError::Tls {
        var: "TLS_KEY_FILE",
        problem: "holds no readable PEM private key",
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|_| ConfigError::Tls {
            var: "TLS_CERT_FILE",
            problem: "cannot be used with TLS 1.2 and 1.3",
        })?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|_| ConfigError::Tls {
            var: "TLS_KEY_FILE",
            problem: "does not match the certificate",
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // The server picks the suite, from its own order (strongest first), not the client's.
    config.ignore_client_order = true;
    Ok(Some(config))
}

/// The PEM certificates in `path` (which `var` names): at least one, each readable.
pub(crate) fn certificates(
    path: &Path,
    var: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let unreadable = || ConfigError::Tls {
        var,
        problem: "holds no readable PEM certificate",
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|_| unreadable())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| unreadable())?;
    if chain.is_empty() {
        return Err(unreadable());
    }
    Ok(chain)
}
