//! TLS for the collectors (Redis `rediss://`, Kafka `tls:`): a rustls client config from
//! `ca_file` (else the webpki roots), an optional client certificate (`cert_file` + `key_file`)
//! and `insecure_skip_verify`. Vigil does the handshake itself (tokio-rustls, ring) and hands the
//! stream to the protocol code, so the options behave the same for every collector.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};

/// The TLS options of one collector.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions<'a> {
    /// PEM bundle of the CAs to trust instead of the built-in roots.
    pub ca_file: Option<&'a Path>,
    /// PEM client certificate chain.
    pub cert_file: Option<&'a Path>,
    /// PEM private key of the client certificate.
    pub key_file: Option<&'a Path>,
    /// Accept any server certificate (testing only).
    pub insecure_skip_verify: bool,
}

/// Builds the client config; the error says which file is wrong.
pub fn client_config(opts: &TlsOptions<'_>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = if opts.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match opts.ca_file {
            Some(path) => {
                for cert in read_certs(path, "ca_file")? {
                    roots
                        .add(cert)
                        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    let config = match (opts.cert_file, opts.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "cert_file")?;
            let key = read_key(key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("cert_file/key_file: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

pub(crate) fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {key} {}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{key} {}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{key} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read key_file {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| format!("key_file {}: {e}", path.display()))?
        .ok_or_else(|| format!("key_file {} holds no PEM private key", path.display()))
}

/// The server name to verify, from the URL host.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}

/// `insecure_skip_verify`: signatures are still checked, the certificate chain and name are not.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
