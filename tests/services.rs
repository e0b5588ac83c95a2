//! Every real service that `scripts/test-services.sh` starts answers a real request. A service
//! that is missing fails here with the command that starts it, so a broken environment is
//! reported once, clearly, rather than as a confusing failure in a feature test.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{http_get, service};

fn connect(addr: &str, what: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| {
        panic!("{what} at {addr} does not accept connections ({e}); start it with scripts/test-services.sh")
    });
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_string()
}

#[test]
fn redis_answers_ping() {
    let url = service("VIGIL_TEST_REDIS_URL", "Redis");
    let mut s = connect(&host_port(&url), "Redis");
    s.write_all(b"PING\r\n").expect("write");
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"+PONG\r\n");
}

#[test]
fn kafka_broker_answers_api_versions() {
    let brokers = service("VIGIL_TEST_KAFKA_BROKERS", "the Kafka broker (tansu)");
    let addr = brokers.split(',').next().unwrap_or_default().to_string();
    let mut s = connect(&addr, "the Kafka broker (tansu)");
    // ApiVersions v0: api_key 18, version 0, correlation id 7, client id "vigil-test".
    let client = b"vigil-test";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&7i32.to_be_bytes());
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame).expect("write");
    let mut head = [0u8; 10];
    s.read_exact(&mut head).expect("read ApiVersions response");
    let correlation = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let error = i16::from_be_bytes([head[8], head[9]]);
    assert_eq!(
        (correlation, error),
        (7, 0),
        "ApiVersions answer from {addr}"
    );
}

#[test]
fn smtp_server_greets() {
    let addr = service("VIGIL_TEST_SMTP_ADDR", "the SMTP server (aiosmtpd)");
    let mut s = connect(&addr, "the SMTP server (aiosmtpd)");
    let mut buf = [0u8; 3];
    s.read_exact(&mut buf).expect("read banner");
    assert_eq!(&buf, b"220");
    let maildir = service("VIGIL_TEST_SMTP_MAILDIR", "the SMTP server's Maildir");
    assert!(
        std::path::Path::new(&maildir).join("new").is_dir(),
        "{maildir}/new is not a Maildir"
    );
}

#[test]
fn http_services_are_ready() {
    for (var, what, path, expect) in [
        (
            "VIGIL_TEST_PROMETHEUS_URL",
            "Prometheus",
            "/-/ready",
            "Ready",
        ),
        (
            "VIGIL_TEST_ALERTMANAGER_URL",
            "Alertmanager",
            "/-/ready",
            "OK",
        ),
        ("VIGIL_TEST_VMAGENT_URL", "vmagent", "/health", "OK"),
        (
            "VIGIL_TEST_NODE_EXPORTER_URL",
            "node_exporter",
            "/metrics",
            "node_exporter_build_info",
        ),
    ] {
        let base = service(var, what);
        let (code, body) = http_get(&format!("{base}{path}"));
        assert_eq!(
            code, 200,
            "{what} at {base}{path} answered {code}; start it with scripts/test-services.sh"
        );
        assert!(
            body.contains(expect),
            "{what} at {base}{path}: unexpected body {body:?}"
        );
    }
}

#[test]
fn kubectl_client_runs() {
    let kubectl = service("VIGIL_TEST_KUBECTL", "kubectl");
    let out = std::process::Command::new(&kubectl)
        .args(["version", "--client"])
        .output();
    let out = out.unwrap_or_else(|e| panic!("cannot run {kubectl}: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn ledger_migrates_and_keeps_runs_on_postgres() {
    let url = service("VIGIL_TEST_PG_URL", "PostgreSQL");
    let ledger = vigil::store::ledger::Ledger::open_url(&url)
        .await
        .unwrap_or_else(|e| panic!("{e}; start PostgreSQL with scripts/test-services.sh"));
    assert!(
        !ledger.target().contains(":vigil@"),
        "password must be redacted: {}",
        ledger.target()
    );
    let agent = format!("test-{}-{}", std::process::id(), fastrand::u64(..));
    ledger
        .start_run(&agent, "0.1.0", 1_000)
        .await
        .expect("start");
    ledger
        .heartbeat(&agent, 1_000, 2_000)
        .await
        .expect("heartbeat");
    ledger.close().await;
    // Reopen: migrations are idempotent and the run is still there, not stopped.
    let ledger = vigil::store::ledger::Ledger::open_url(&url)
        .await
        .expect("reopen");
    ledger
        .finish_run(&agent, 1_000, 3_000)
        .await
        .expect("finish");
    let runs = ledger.runs(&agent, 5).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].last_seen_ms, runs[0].stopped_at_ms),
        (3_000, Some(3_000))
    );
}
