//! "Never lost, never doubled" at the daemon level: a notification is pending (its receiver
//! answers 500) when the agent is killed with SIGKILL; after a restart, with the receiver healthy,
//! the webhook receives it exactly once (one accepted delivery per idempotency key), although
//! the alert no longer fires: it comes from the outbox in the ledger, not from re-evaluation.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Daemon, eventually};

/// A webhook receiver on a std listener: answers 500 while `failing`, else 200, and counts
/// accepted deliveries per `Idempotency-Key` (and attempts overall).
struct Receiver {
    port: u16,
    failing: Arc<AtomicBool>,
    accepted: Arc<Mutex<HashMap<String, usize>>>,
    attempts: Arc<Mutex<usize>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let failing = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(Mutex::new(HashMap::new()));
        let attempts = Arc::new(Mutex::new(0));
        let (f, a, n) = (failing.clone(), accepted.clone(), attempts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let (mut key, mut len) = (String::new(), 0usize);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if lower.starts_with("idempotency-key:") {
                        key = line["idempotency-key:".len()..].trim().to_string();
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                *n.lock().expect("lock") += 1;
                let status = if f.load(Ordering::SeqCst) {
                    "500 Internal Server Error"
                } else {
                    *a.lock().expect("lock").entry(key).or_default() += 1;
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Self {
            port,
            failing,
            accepted,
            attempts,
        }
    }
}

#[test]
fn a_pending_notification_survives_kill_9_and_arrives_once() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("alerts.yaml"),
        format!(
            "route:\n  receiver: hook\n  group_wait: 0s\n  group_interval: 1h\n  repeat_interval: 4h\n\
             receivers:\n  - name: hook\n    max_attempts: 1000\n    min_backoff: 200ms\n    max_backoff: 1s\n    webhook_configs:\n      - url: http://127.0.0.1:{}/hook\n        send_resolved: false\n\
             rules:\n  - alert: DemoScraped\n    selector: up{{job=\"demo\"}}\n    op: \"==\"\n    value: 1\n    labels: {{severity: info}}\n",
            rx.port
        ),
    )
    .expect("alerts");
    let demo = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let cfg = common::write_config(
        dir.path(),
        &format!(
            "demo:\n  enabled: true\n  listen: 127.0.0.1:{demo}\n\
             scrape:\n  targets:\n    - job: demo\n      urls: [http://127.0.0.1:{demo}/metrics]\n      interval: 1s\n\
             alerts: [alerts.yaml]\n"
        ),
    );
    let mut d = Daemon::start(&cfg);
    // The alert fires, the notification is enqueued and fails at the receiver at least twice.
    eventually(
        Duration::from_secs(60),
        "failed attempts at the receiver",
        || (*rx.attempts.lock().expect("lock") >= 2).then_some(()),
    );
    let (_, body) = d.get("/api/v1/alerts/history?state=pending");
    assert!(
        body.contains("DemoScraped"),
        "pending in the ledger: {body}"
    );
    d.signal("KILL");
    d.wait_exit(Duration::from_secs(10));
    drop(d);

    // Restart without the demo: the rule no longer fires, so nothing is re-emitted and the only
    // way the receiver hears of the alert is the outbox row that survived the kill.
    rx.failing.store(false, Ordering::SeqCst);
    let cfg = common::write_config(dir.path(), "alerts: [alerts.yaml]\n");
    let d = Daemon::start(&cfg);
    eventually(
        Duration::from_secs(60),
        "the delivery after the restart",
        || (!rx.accepted.lock().expect("lock").is_empty()).then_some(()),
    );
    // A second delivery (a retry of an already accepted send) would show up here.
    std::thread::sleep(Duration::from_secs(5));
    let accepted = rx.accepted.lock().expect("lock").clone();
    assert_eq!(accepted.len(), 1, "one notification: {accepted:?}");
    assert!(
        accepted.values().all(|n| *n == 1),
        "each accepted exactly once: {accepted:?}"
    );
    let (_, body) = d.get("/api/v1/alerts/history?state=sent");
    assert!(body.contains("DemoScraped"), "{body}");
}
