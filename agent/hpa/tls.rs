//! The serving certificate of the external metrics API: PEM files from `hpa.tls`, or a
//! self-signed CA and a certificate it signs, generated with rcgen into `data_dir` on first
//! start and reused afterwards (`hpa-ca.crt`, `hpa-tls.crt`, `hpa-tls.key`). Clients trust
//! `hpa-ca.crt` (kubectl's `certificate-authority`, the APIService's `caBundle`).

use std::path::{Path, PathBuf};

use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::HpaError;
use super::config::HpaTls;

/// Default SANs of the generated certificate.
pub const DEFAULT_SANS: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "::1",
    "vigil-aggregator.vigil.svc",
    "vigil-aggregator.vigil.svc.cluster.local",
];

/// Loaded certificate chain and key.
pub struct ServingCert {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
    /// The CA file clients should trust when generated (None for configured files).
    pub generated_ca: Option<PathBuf>,
}

fn tls_err(file: &Path, message: impl Into<String>) -> HpaError {
    HpaError::Tls {
        file: file.display().to_string(),
        message: message.into(),
    }
}

/// Reads a PEM chain and key.
pub fn load_pem(cert_file: &Path, key_file: &Path) -> Result<ServingCert, HpaError> {
    let cert_pem = std::fs::read(cert_file).map_err(|e| tls_err(cert_file, e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert_file, e.to_string()))?;
    if chain.is_empty() {
        return Err(tls_err(cert_file, "no CERTIFICATE block"));
    }
    let key_pem = std::fs::read(key_file).map_err(|e| tls_err(key_file, e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| tls_err(key_file, e.to_string()))?
        .ok_or_else(|| tls_err(key_file, "no PRIVATE KEY block"))?;
    Ok(ServingCert {
        chain,
        key,
        generated_ca: None,
    })
}

/// The configured files, or the generated ones in `data_dir` (created when missing).
pub fn serving_cert(cfg: &HpaTls, data_dir: &Path) -> Result<ServingCert, HpaError> {
    if let (Some(c), Some(k)) = (&cfg.cert_file, &cfg.key_file) {
        return load_pem(c, k);
    }
    let ca = data_dir.join("hpa-ca.crt");
    let crt = data_dir.join("hpa-tls.crt");
    let key = data_dir.join("hpa-tls.key");
    if !(ca.is_file() && crt.is_file() && key.is_file()) {
        generate(cfg, &ca, &crt, &key)?;
        tracing::info!(ca = %ca.display(), "generated a self-signed certificate for the external metrics API");
    }
    let mut sc = load_pem(&crt, &key)?;
    sc.generated_ca = Some(ca);
    Ok(sc)
}

fn generate(
    cfg: &HpaTls,
    ca_file: &Path,
    crt_file: &Path,
    key_file: &Path,
) -> Result<(), HpaError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let gen_err = |e: rcgen::Error| tls_err(crt_file, format!("cannot generate: {e}"));
    let sans: Vec<String> = if cfg.sans.is_empty() {
        DEFAULT_SANS.iter().map(|s| s.to_string()).collect()
    } else {
        cfg.sans.clone()
    };

    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "vigil external metrics CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen_err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().map_err(gen_err)?;
    let mut leaf = CertificateParams::new(sans).map_err(gen_err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "vigil-aggregator");
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // OpenSSL's X509_STRICT (urllib3 2.3+, Python clients) wants the authority key identifier.
    leaf.use_authority_key_identifier_extension = true;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(gen_err)?;

    if let Some(dir) = ca_file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| tls_err(dir, e.to_string()))?;
    }
    std::fs::write(ca_file, ca_cert.pem()).map_err(|e| tls_err(ca_file, e.to_string()))?;
    std::fs::write(crt_file, format!("{}{}", leaf_cert.pem(), ca_cert.pem()))
        .map_err(|e| tls_err(crt_file, e.to_string()))?;
    write_private(key_file, leaf_key.serialize_pem().as_bytes())
        .map_err(|e| tls_err(key_file, e.to_string()))?;
    Ok(())
}

/// Writes a file readable by the owner only.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}
