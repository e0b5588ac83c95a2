//! The Kafka connection layer of the `kafka` collector: one TCP (or TLS) connection to one
//! broker, request framing with correlation ids, ApiVersions negotiation and SASL (PLAIN,
//! SCRAM-SHA-256/512). Messages are encoded and decoded by the `kafka-protocol` crate; this
//! module only moves frames. Called by the collector in `mod.rs`, one [`Conn`] per broker.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, ListGroupsRequest, ListGroupsResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetFetchRequest,
    OffsetFetchResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Message, StrBytes, VersionRange,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::secret::Secret;

/// Largest response frame accepted (a Metadata response of a big cluster is a few MB).
const MAX_FRAME: usize = 100 * 1024 * 1024;
/// Client id sent in every request header.
const CLIENT_ID: &str = "vigil";
/// Error code of UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

/// Why talking to one broker failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// TCP connect, read or write.
    #[error("broker {addr}: {what}: {source}")]
    Io {
        /// host:port.
        addr: String,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The connection or one request took longer than the deadline.
    #[error("broker {addr}: no answer within {}", humantime::format_duration(*.after))]
    Timeout {
        /// host:port.
        addr: String,
        /// The deadline.
        after: Duration,
    },
    /// TLS setup or handshake.
    #[error("broker {addr}: tls: {message}")]
    Tls {
        /// host:port.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// A frame that does not decode, or a response to another request.
    #[error("broker {addr}: bad {api} response: {message}")]
    Protocol {
        /// host:port.
        addr: String,
        /// The API.
        api: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The broker and vigil share no version of an API.
    #[error(
        "broker {addr}: no common version of {api} (broker supports {broker}, vigil {ours}); \
         the broker is too old or too new for this vigil"
    )]
    NoCommonVersion {
        /// host:port.
        addr: String,
        /// The API.
        api: &'static str,
        /// Broker range, or "none".
        broker: String,
        /// Our range.
        ours: String,
    },
    /// SASL handshake or authentication.
    #[error("broker {addr}: sasl {mechanism}: {message}")]
    Sasl {
        /// host:port.
        addr: String,
        /// The mechanism.
        mechanism: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// SASL mechanisms the collector speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN` (only over TLS in production: the password crosses the wire).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl Mechanism {
    /// The name sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// Parses a configured mechanism name.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "PLAIN" => Some(Self::Plain),
            "SCRAM-SHA-256" => Some(Self::ScramSha256),
            "SCRAM-SHA-512" => Some(Self::ScramSha512),
            _ => None,
        }
    }
}

/// Resolved SASL credentials.
#[derive(Clone)]
pub struct SaslAuth {
    /// Mechanism.
    pub mechanism: Mechanism,
    /// User name.
    pub username: String,
    /// Password (never printed).
    pub password: Secret,
}

impl fmt::Debug for SaslAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SaslAuth({}, {}, ***)",
            self.mechanism.name(),
            self.username
        )
    }
}

/// How to reach brokers: TLS, SASL, deadline. Shared by every connection of a collector.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// TLS client configuration, if TLS is on.
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// SASL, if configured.
    pub sasl: Option<SaslAuth>,
    /// Deadline for connecting and for each request.
    pub timeout: Duration,
    /// Counts requests per API (debug metric and benchmark).
    pub counter: RequestCounter,
}

/// Requests sent per API name, shared by the connections of one collector.
#[derive(Clone, Default, Debug)]
pub struct RequestCounter(Arc<std::sync::Mutex<BTreeMap<&'static str, u64>>>);

impl RequestCounter {
    fn add(&self, api: &'static str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(api).or_default() += 1;
        }
    }

    /// Totals so far, by API name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// A request the collector sends: kafka-protocol's `Request` trait needs the crate's `broker`
/// feature (request decoding), so the client side pairs requests and responses here.
pub trait Request: Message + Encodable + HeaderVersion {
    /// The API key.
    const KEY: i16;
    /// The response type.
    type Response: Decodable + HeaderVersion;
}

macro_rules! requests {
    ($($req:ident => $resp:ident, $key:ident;)*) => {
        $(impl Request for $req {
            const KEY: i16 = ApiKey::$key as i16;
            type Response = $resp;
        })*
    };
}

requests! {
    ApiVersionsRequest => ApiVersionsResponse, ApiVersions;
    MetadataRequest => MetadataResponse, Metadata;
    ListOffsetsRequest => ListOffsetsResponse, ListOffsets;
    OffsetFetchRequest => OffsetFetchResponse, OffsetFetch;
    FindCoordinatorRequest => FindCoordinatorResponse, FindCoordinator;
    ListGroupsRequest => ListGroupsResponse, ListGroups;
    DescribeGroupsRequest => DescribeGroupsResponse, DescribeGroups;
    SaslHandshakeRequest => SaslHandshakeResponse, SaslHandshake;
    SaslAuthenticateRequest => SaslAuthenticateResponse, SaslAuthenticate;
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One broker connection after ApiVersions (and SASL).
pub struct Conn {
    io: Box<dyn Io>,
    addr: String,
    next_id: i32,
    /// Broker ranges by API key.
    broker_versions: HashMap<i16, VersionRange>,
    timeout: Duration,
    counter: RequestCounter,
}

/// The name of an API for messages and the request counter.
pub fn api_name(key: i16) -> &'static str {
    match ApiKey::try_from(key) {
        Ok(ApiKey::Metadata) => "Metadata",
        Ok(ApiKey::ListOffsets) => "ListOffsets",
        Ok(ApiKey::OffsetFetch) => "OffsetFetch",
        Ok(ApiKey::FindCoordinator) => "FindCoordinator",
        Ok(ApiKey::ListGroups) => "ListGroups",
        Ok(ApiKey::DescribeGroups) => "DescribeGroups",
        Ok(ApiKey::ApiVersions) => "ApiVersions",
        Ok(ApiKey::SaslHandshake) => "SaslHandshake",
        Ok(ApiKey::SaslAuthenticate) => "SaslAuthenticate",
        _ => "other",
    }
}

/// The version to use for an API: the highest in both the broker's range and ours.
pub fn pick_version(
    broker: Option<VersionRange>,
    ours: VersionRange,
) -> Result<i16, (String, String)> {
    let Some(b) = broker else {
        return Err(("none".into(), ours.to_string()));
    };
    let common = b.intersect(&ours);
    if common.is_empty() {
        Err((b.to_string(), ours.to_string()))
    } else {
        Ok(common.max)
    }
}

/// Decodes an ApiVersions response body into broker ranges by API key.
pub fn decode_api_versions(
    mut body: &[u8],
    version: i16,
) -> Result<(i16, HashMap<i16, VersionRange>), String> {
    let resp = ApiVersionsResponse::decode(&mut body, version).map_err(|e| e.to_string())?;
    let map = resp
        .api_keys
        .iter()
        .map(|k| {
            (
                k.api_key,
                VersionRange {
                    min: k.min_version,
                    max: k.max_version,
                },
            )
        })
        .collect();
    Ok((resp.error_code, map))
}

impl Conn {
    /// Connects to `addr` (host:port), negotiates versions and authenticates.
    pub async fn connect(addr: &str, opts: &ConnectOptions) -> Result<Self, ConnError> {
        let timeout = opts.timeout;
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(ConnError::Io {
                    addr: addr.into(),
                    what: "connect",
                    source,
                });
            }
            Err(_) => {
                return Err(ConnError::Timeout {
                    addr: addr.into(),
                    after: timeout,
                });
            }
        };
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &opts.tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| ConnError::Tls {
                        addr: addr.into(),
                        message: format!("{host:?} is not a valid server name: {e}"),
                    })?;
                let connector = tokio_rustls::TlsConnector::from(cfg.clone());
                let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| ConnError::Timeout {
                        addr: addr.into(),
                        after: timeout,
                    })?
                    .map_err(|e| ConnError::Tls {
                        addr: addr.into(),
                        message: format!("handshake: {e}"),
                    })?;
                Box::new(tls)
            }
        };
        let mut conn = Conn {
            io,
            addr: addr.into(),
            next_id: 1,
            broker_versions: HashMap::new(),
            timeout,
            counter: opts.counter.clone(),
        };
        conn.negotiate().await?;
        if let Some(sasl) = &opts.sasl {
            conn.authenticate(sasl).await?;
        }
        Ok(conn)
    }

    /// host:port of this connection.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// ApiVersions: ask with v3 (flexible); a broker that does not know v3 answers with a v0
    /// body and UNSUPPORTED_VERSION, listing what it supports, and we ask again with v0.
    async fn negotiate(&mut self) -> Result<(), ConnError> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("vigil"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let body = self.round_trip::<ApiVersionsRequest>(&req, 3).await?;
        let decoded = match decode_api_versions(&body, 3) {
            Ok(d) => d,
            Err(_) => decode_api_versions(&body, 0).map_err(|m| self.protocol("ApiVersions", m))?,
        };
        let (code, map) = if decoded.0 == UNSUPPORTED_VERSION {
            let body = self
                .round_trip::<ApiVersionsRequest>(&ApiVersionsRequest::default(), 0)
                .await?;
            decode_api_versions(&body, 0).map_err(|m| self.protocol("ApiVersions", m))?
        } else {
            decoded
        };
        if code != 0 {
            return Err(self.protocol("ApiVersions", format!("error code {code}")));
        }
        self.broker_versions = map;
        Ok(())
    }

    /// The version this connection uses for request type `R`, capped at `cap`.
    pub fn version<R: Request>(&self, cap: i16) -> Result<i16, ConnError> {
        let ours = VersionRange {
            min: R::VERSIONS.min,
            max: R::VERSIONS.max.min(cap),
        };
        pick_version(self.broker_versions.get(&R::KEY).copied(), ours).map_err(|(broker, ours)| {
            ConnError::NoCommonVersion {
                addr: self.addr.clone(),
                api: api_name(R::KEY),
                broker,
                ours,
            }
        })
    }

    /// Sends `req` with the negotiated version (at most `cap`) and decodes the response.
    pub async fn send<R: Request>(
        &mut self,
        req: &R,
        cap: i16,
    ) -> Result<(R::Response, i16), ConnError> {
        let version = self.version::<R>(cap)?;
        let body = self.round_trip::<R>(req, version).await?;
        let mut buf: &[u8] = &body;
        let resp = R::Response::decode(&mut buf, version)
            .map_err(|e| self.protocol(api_name(R::KEY), e.to_string()))?;
        Ok((resp, version))
    }

    fn protocol(&self, api: &'static str, message: String) -> ConnError {
        ConnError::Protocol {
            addr: self.addr.clone(),
            api,
            message,
        }
    }

    /// Writes one request frame and reads its response; returns the body after the header.
    async fn round_trip<R: Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Result<Vec<u8>, ConnError> {
        let api = api_name(R::KEY);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let frame = encode_frame(req, version, id).map_err(|m| self.protocol(api, m))?;
        self.counter.add(api);
        let timeout = self.timeout;
        let addr = self.addr.clone();
        let io = &mut self.io;
        let exchange = async move {
            io.write_all(&frame).await.map_err(|source| ConnError::Io {
                addr: addr.clone(),
                what: "write",
                source,
            })?;
            let mut len = [0u8; 4];
            io.read_exact(&mut len)
                .await
                .map_err(|source| ConnError::Io {
                    addr: addr.clone(),
                    what: "read",
                    source,
                })?;
            let len = i32::from_be_bytes(len);
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_FRAME {
                return Err(ConnError::Protocol {
                    addr,
                    api,
                    message: format!("frame of {len} bytes is larger than {MAX_FRAME}"),
                });
            }
            let mut body = vec![0u8; len];
            io.read_exact(&mut body)
                .await
                .map_err(|source| ConnError::Io {
                    addr: addr.clone(),
                    what: "read",
                    source,
                })?;
            Ok(body)
        };
        let body = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ConnError::Timeout {
                addr: self.addr.clone(),
                after: timeout,
            })??;
        let header_version = R::Response::header_version(version);
        split_response(&body, header_version, id).map_err(|m| self.protocol(api, m))
    }

    /// SaslHandshake then SaslAuthenticate rounds.
    async fn authenticate(&mut self, sasl: &SaslAuth) -> Result<(), ConnError> {
        let mechanism = sasl.mechanism.name();
        let err = |addr: &str, message: String| ConnError::Sasl {
            addr: addr.into(),
            mechanism,
            message,
        };
        if !self
            .broker_versions
            .contains_key(&SaslHandshakeRequest::KEY)
        {
            return Err(err(
                &self.addr,
                "the broker does not offer SASL (no SaslHandshake in ApiVersions); remove sasl \
                 from the collector or enable a SASL listener on the broker"
                    .into(),
            ));
        }
        let req =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let (resp, _) = self.send(&req, 1).await?;
        if resp.error_code != 0 {
            let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(err(
                &self.addr,
                format!(
                    "the broker refused the mechanism (error {}); it offers [{}]",
                    resp.error_code,
                    offered.join(", ")
                ),
            ));
        }
        match sasl.mechanism {
            Mechanism::Plain => {
                let mut msg = Vec::new();
                msg.push(0);
                msg.extend_from_slice(sasl.username.as_bytes());
                msg.push(0);
                msg.extend_from_slice(sasl.password.expose().as_bytes());
                self.sasl_round(msg, mechanism).await?;
            }
            Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
                let nonce: String = (0..24).map(|_| fastrand::alphanumeric()).collect();
                let mut scram = scram::Client::new(sasl.mechanism, &sasl.username, &nonce);
                let server_first = self
                    .sasl_round(scram.first().into_bytes(), mechanism)
                    .await?;
                let server_first = String::from_utf8_lossy(&server_first).into_owned();
                let final_msg = scram
                    .final_message(&server_first, sasl.password.expose())
                    .map_err(|m| err(&self.addr, m))?;
                let server_final = self.sasl_round(final_msg.into_bytes(), mechanism).await?;
                scram
                    .verify_server(&String::from_utf8_lossy(&server_final))
                    .map_err(|m| err(&self.addr, m))?;
            }
        }
        Ok(())
    }

    async fn sasl_round(
        &mut self,
        bytes: Vec<u8>,
        mechanism: &'static str,
    ) -> Result<Vec<u8>, ConnError> {
        let req = SaslAuthenticateRequest::default().with_auth_bytes(bytes.into());
        let (resp, _) = self.send(&req, 2).await?;
        if resp.error_code != 0 {
            let why = resp
                .error_message
                .as_ref()
                .map(|m| m.as_str().to_string())
                .unwrap_or_else(|| format!("error code {}", resp.error_code));
            return Err(ConnError::Sasl {
                addr: self.addr.clone(),
                mechanism,
                message: format!("authentication failed: {why}; check username and password"),
            });
        }
        Ok(resp.auth_bytes.to_vec())
    }
}

/// Length-prefixed request frame: size, header, body.
pub fn encode_frame<R: Request>(
    req: &R,
    version: i16,
    correlation_id: i32,
) -> Result<Vec<u8>, String> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut buf = vec![0u8; 4];
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| e.to_string())?;
    req.encode(&mut buf, version).map_err(|e| e.to_string())?;
    let len = i32::try_from(buf.len() - 4).map_err(|_| "request too large".to_string())?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Checks the response header (correlation id) and returns the body after it.
pub fn split_response(
    frame: &[u8],
    header_version: i16,
    correlation_id: i32,
) -> Result<Vec<u8>, String> {
    let mut buf: &[u8] = frame;
    let header = ResponseHeader::decode(&mut buf, header_version).map_err(|e| e.to_string())?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "correlation id {} does not match request {correlation_id}",
            header.correlation_id
        ));
    }
    Ok(buf.to_vec())
}

/// Builds the rustls client configuration from the `tls:` block (shared with the other
/// collectors: [`crate::collect::tls`]).
pub fn tls_config(
    ca_file: Option<&Path>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
    insecure_skip_verify: bool,
) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
    crate::collect::tls::client_config(&crate::collect::tls::TlsOptions {
        ca_file,
        cert_file,
        key_file,
        insecure_skip_verify,
    })
}

pub(crate) mod scram {
    //! SCRAM (RFC 5802 / 7677) client messages, without channel binding.
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256, Sha512};

    use super::Mechanism;

    /// One SCRAM exchange.
    pub struct Client {
        mechanism: Mechanism,
        client_first_bare: String,
        nonce: String,
        server_signature: Vec<u8>,
    }

    fn escape(user: &str) -> String {
        user.replace('=', "=3D").replace(',', "=2C")
    }

    fn hmac(m: Mechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
        match m {
            Mechanism::ScramSha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            _ => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(m: Mechanism, data: &[u8]) -> Vec<u8> {
        match m {
            Mechanism::ScramSha512 => Sha512::digest(data).to_vec(),
            _ => Sha256::digest(data).to_vec(),
        }
    }

    fn salted(m: Mechanism, password: &str, salt: &[u8], rounds: u32) -> Vec<u8> {
        match m {
            Mechanism::ScramSha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), salt, rounds).to_vec()
            }
            _ => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, rounds).to_vec()
            }
        }
    }

    impl Client {
        /// A new exchange with a client nonce.
        pub fn new(mechanism: Mechanism, username: &str, nonce: &str) -> Self {
            Self {
                mechanism,
                client_first_bare: format!("n={},r={nonce}", escape(username)),
                nonce: nonce.into(),
                server_signature: Vec::new(),
            }
        }

        /// client-first-message.
        pub fn first(&self) -> String {
            format!("n,,{}", self.client_first_bare)
        }

        /// client-final-message for the server-first-message.
        pub fn final_message(
            &mut self,
            server_first: &str,
            password: &str,
        ) -> Result<String, String> {
            let mut nonce = None;
            let mut salt = None;
            let mut rounds = None;
            for part in server_first.split(',') {
                if let Some(v) = part.strip_prefix("r=") {
                    nonce = Some(v);
                } else if let Some(v) = part.strip_prefix("s=") {
                    salt = Some(v);
                } else if let Some(v) = part.strip_prefix("i=") {
                    rounds = v.parse::<u32>().ok();
                } else if let Some(v) = part.strip_prefix("e=") {
                    return Err(format!("server error {v}"));
                }
            }
            let (Some(nonce), Some(salt), Some(rounds)) = (nonce, salt, rounds) else {
                return Err("malformed server-first-message".into());
            };
            if !nonce.starts_with(&self.nonce) {
                return Err("server nonce does not extend the client nonce".into());
            }
            if rounds == 0 {
                return Err("iteration count 0".into());
            }
            let salt = STANDARD
                .decode(salt)
                .map_err(|e| format!("salt is not base64: {e}"))?;
            let m = self.mechanism;
            let salted = salted(m, password, &salt, rounds);
            let client_key = hmac(m, &salted, b"Client Key");
            let stored_key = hash(m, &client_key);
            let without_proof = format!("c=biws,r={nonce}");
            let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
            let client_signature = hmac(m, &stored_key, auth_message.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&client_signature)
                .map(|(a, b)| a ^ b)
                .collect();
            let server_key = hmac(m, &salted, b"Server Key");
            self.server_signature = hmac(m, &server_key, auth_message.as_bytes());
            Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
        }

        /// Checks the server-final-message.
        pub fn verify_server(&self, server_final: &str) -> Result<(), String> {
            if let Some(e) = server_final.strip_prefix("e=") {
                return Err(format!("server error {e}"));
            }
            let v = server_final
                .strip_prefix("v=")
                .ok_or_else(|| "malformed server-final-message".to_string())?;
            let v = STANDARD
                .decode(v.split(',').next().unwrap_or(v))
                .map_err(|e| format!("server signature is not base64: {e}"))?;
            if v == self.server_signature {
                Ok(())
            } else {
                Err(
                    "server signature does not match; the broker does not know this password"
                        .into(),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse};

    fn fixture(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/kafka")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn frame_round_trip_checks_correlation_id() {
        let frame = encode_frame(&MetadataRequest::default(), 12, 7).expect("encode");
        let len = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        assert_eq!(len as usize, frame.len() - 4);
        // api key 3 (Metadata), version 12, correlation id 7
        assert_eq!(&frame[4..12], &[0, 3, 0, 12, 0, 0, 0, 7]);
        let mut response = 7i32.to_be_bytes().to_vec();
        response.push(0); // empty tagged fields (header v1)
        response.extend_from_slice(b"body");
        assert_eq!(split_response(&response, 1, 7).expect("ok"), b"body");
        let e = split_response(&response, 1, 8).expect_err("mismatch");
        assert!(
            e.contains("correlation id 7 does not match request 8"),
            "{e}"
        );
    }

    #[test]
    fn version_pick_is_the_highest_common_version() {
        let r = |min, max| VersionRange { min, max };
        assert_eq!(pick_version(Some(r(0, 12)), r(0, 9)), Ok(9));
        assert_eq!(pick_version(Some(r(4, 6)), r(0, 9)), Ok(6));
        assert!(pick_version(Some(r(10, 12)), r(0, 9)).is_err());
        assert!(pick_version(None, r(0, 9)).is_err());
    }

    /// ApiVersions v3 response recorded from tansu 0.6.0 (body after the response header).
    #[test]
    fn recorded_tansu_api_versions_negotiate() {
        let body = fixture("tansu-0.6.0-api-versions-v3.bin");
        let (code, map) = decode_api_versions(&body, 3).expect("decode");
        assert_eq!(code, 0);
        for (key, cap) in [
            (MetadataRequest::KEY, 12),
            (kafka_protocol::messages::ListOffsetsRequest::KEY, 10),
            (kafka_protocol::messages::OffsetFetchRequest::KEY, 9),
            (kafka_protocol::messages::FindCoordinatorRequest::KEY, 6),
            (kafka_protocol::messages::DescribeGroupsRequest::KEY, 6),
            (kafka_protocol::messages::ListGroupsRequest::KEY, 5),
        ] {
            let v = pick_version(map.get(&key).copied(), VersionRange { min: 0, max: cap });
            assert!(
                v.is_ok(),
                "{}: {v:?} from {:?}",
                api_name(key),
                map.get(&key)
            );
        }
    }

    /// Metadata response recorded from tansu 0.6.0 (version in the file name).
    #[test]
    fn recorded_tansu_metadata_decodes() {
        let body = fixture("tansu-0.6.0-metadata-v12.bin");
        let resp = MetadataResponse::decode(&mut body.as_slice(), 12).expect("decode");
        assert_eq!(resp.brokers.len(), 1);
        assert!(resp.brokers[0].port > 0);
    }

    /// A synthetic "Kafka 4" broker: old versions removed (Metadata from v0 gone, OffsetFetch
    /// from v1 gone, ...). We pick the highest common version, never an old one.
    #[test]
    fn kafka4_like_broker_without_old_versions() {
        // ApiVersions v0 body: error_code, [api_key, min, max]
        let apis: &[(i16, i16, i16)] = &[
            (3, 0, 13),
            (2, 1, 10),
            (9, 1, 10),
            (10, 0, 6),
            (15, 0, 6),
            (16, 0, 5),
            (18, 0, 4),
        ];
        let mut body = 0i16.to_be_bytes().to_vec();
        body.extend_from_slice(&(apis.len() as i32).to_be_bytes());
        for (k, min, max) in apis {
            body.extend_from_slice(&k.to_be_bytes());
            body.extend_from_slice(&min.to_be_bytes());
            body.extend_from_slice(&max.to_be_bytes());
        }
        let (code, map) = decode_api_versions(&body, 0).expect("decode");
        assert_eq!(code, 0);
        let ours = |key| match key {
            3 => MetadataRequest::VERSIONS,
            2 => kafka_protocol::messages::ListOffsetsRequest::VERSIONS,
            9 => kafka_protocol::messages::OffsetFetchRequest::VERSIONS,
            _ => VersionRange { min: 0, max: 6 },
        };
        assert_eq!(pick_version(map.get(&3).copied(), ours(3)), Ok(13));
        assert_eq!(pick_version(map.get(&2).copied(), ours(2)), Ok(10));
        assert_eq!(pick_version(map.get(&9).copied(), ours(9)), Ok(9));
        // A broker that dropped everything up to v9 of OffsetFetch: nothing in common.
        let e = pick_version(Some(VersionRange { min: 10, max: 10 }), ours(9)).expect_err("none");
        assert_eq!(e, ("10..10".to_string(), "1..9".to_string()));
    }

    #[test]
    fn scram_sha256_rfc7677_vector() {
        // RFC 7677 section 3.
        let mut c = scram::Client::new(Mechanism::ScramSha256, "user", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = c.final_message(server_first, "pencil").expect("final");
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("server signature");
        assert!(c.verify_server("v=AAAA").is_err());
    }

    /// TLS end to end against an in-process rustls server that answers ApiVersions with the
    /// recorded tansu frame (tansu 0.6.0's --cert/--key flags cannot be combined, so the real
    /// broker cannot serve TLS in the test services).
    #[tokio::test]
    async fn tls_connect_with_the_fixture_ca() {
        use tokio_rustls::rustls;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kafka/tls");
        let certs = crate::collect::tls::read_certs(&dir.join("server.pem"), "cert_file")
            .expect("server cert");
        let key_pem = std::fs::read(dir.join("server.key")).expect("key");
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .expect("pem")
            .expect("a key");
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let body = fixture("tansu-0.6.0-api-versions-v3.bin");
        let srv = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut tls = acceptor.accept(tcp).await.expect("tls accept");
            let mut len = [0u8; 4];
            tls.read_exact(&mut len).await.expect("len");
            let mut req = vec![0u8; i32::from_be_bytes(len) as usize];
            tls.read_exact(&mut req).await.expect("req");
            let (key, version) = (
                i16::from_be_bytes([req[0], req[1]]),
                i16::from_be_bytes([req[2], req[3]]),
            );
            let mut resp = req[4..8].to_vec(); // correlation id, header v0
            resp.extend_from_slice(&body);
            let mut frame = (resp.len() as i32).to_be_bytes().to_vec();
            frame.extend_from_slice(&resp);
            tls.write_all(&frame).await.expect("write");
            tls.flush().await.expect("flush");
            (key, version)
        });
        let ca = dir.join("ca.pem");
        let opts = ConnectOptions {
            tls: Some(tls_config(Some(&ca), None, None, false).expect("tls config")),
            timeout: Duration::from_secs(5),
            ..ConnectOptions::default()
        };
        let conn = Conn::connect(&format!("localhost:{port}"), &opts)
            .await
            .expect("tls connect + ApiVersions");
        assert_eq!(srv.await.expect("server"), (18, 3), "ApiVersions v3 first");
        assert!(conn.version::<MetadataRequest>(12).is_ok());
        assert_eq!(opts.counter.snapshot().get("ApiVersions"), Some(&1));
        // Without the CA the certificate is refused, and the error says tls.
        let other = tls_config(None, None, None, false).expect("webpki roots");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let certs = crate::collect::tls::read_certs(&dir.join("server.pem"), "cert_file")
            .expect("server cert");
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .expect("pem")
            .expect("a key");
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        tokio::spawn(async move {
            if let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });
        let opts = ConnectOptions {
            tls: Some(other),
            timeout: Duration::from_secs(5),
            ..ConnectOptions::default()
        };
        let err = Conn::connect(&format!("localhost:{port}"), &opts)
            .await
            .err()
            .expect("unknown CA");
        assert!(err.to_string().contains("tls: handshake"), "{err}");
    }

    #[test]
    fn mechanism_names() {
        assert_eq!(
            Mechanism::parse("scram-sha-512"),
            Some(Mechanism::ScramSha512)
        );
        assert_eq!(
            Mechanism::parse("PLAIN").map(Mechanism::name),
            Some("PLAIN")
        );
        assert_eq!(Mechanism::parse("GSSAPI"), None);
    }
}
