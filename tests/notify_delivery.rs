//! Notification delivery against real peers: the outbox over a SQLite ledger in a tempdir,
//! sending to a local webhook receiver (golden v4 payloads, retries on 500 and timeouts), the
//! real SMTP server of the test services (and a private aiosmtpd that starts late), the real
//! Alertmanager (push, re-push, resolve), a private Alertmanager whose own webhook payload is
//! compared with ours byte for byte, and an abrupt stop with notifications pending.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil::alert::{Alert, AlertState};
use vigil::notify::Notification;
use vigil::notify::config::AlertingConfig;
use vigil::notify::outbox::{DeliveryRecord, HistoryQuery, Outbox};
use vigil::notify::receivers::{DeliveryConfig, ReceiverConfig};
use vigil::store::ledger::Ledger;

// ---------------------------------------------------------------------------------------------
// A local HTTP receiver that records every request and answers from a script.

#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
    /// Status answered (0 when the request was left hanging past the client's timeout).
    answered: u16,
}

#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    Hang(Duration),
}

#[derive(Clone, Default)]
struct HookState {
    reqs: Arc<Mutex<Vec<Req>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
}

struct Hook {
    url: String,
    state: HookState,
}

impl Hook {
    /// Starts a receiver on a free port; requests are answered from `script`, then 200.
    async fn start(script: Vec<Reply>) -> Hook {
        let state = HookState {
            reqs: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
        };
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind hook");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hook {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn reqs(&self) -> Vec<Req> {
        self.state.reqs.lock().expect("lock").clone()
    }

    fn ok(&self) -> Vec<Req> {
        self.reqs()
            .into_iter()
            .filter(|r| r.answered == 200)
            .collect()
    }
}

async fn handle(
    State(s): State<HookState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let reply = s
        .script
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(Reply::Status(200));
    let mut req = Req {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered: 0,
    };
    match reply {
        Reply::Status(code) => {
            req.answered = code;
            s.reqs.lock().expect("lock").push(req);
            StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
        }
        Reply::Hang(d) => {
            s.reqs.lock().expect("lock").push(req);
            tokio::time::sleep(d).await;
            StatusCode::OK
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building blocks.

fn alert(
    name: &str,
    extra: &[(&str, &str)],
    state: AlertState,
    fired: i64,
    resolved: Option<i64>,
) -> Alert {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert("alertname".into(), name.into());
    for (k, v) in extra {
        labels.insert((*k).into(), (*v).into());
    }
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".to_string(),
        "Error budget of checkout-availability burns 14.4x too fast".to_string(),
    );
    annotations.insert(
        "description".to_string(),
        "1h burn rate 14.4 > 14.4 & 5m burn rate 15.1 > 14.4; budget left 81.2% <of 30d>"
            .to_string(),
    );
    annotations.insert("budget_remaining".to_string(), "0.812".to_string());
    annotations.insert(
        "runbook_url".to_string(),
        "https://runbooks.example/checkout".to_string(),
    );
    Alert {
        labels,
        annotations,
        state,
        active_at_ms: fired - 60_000,
        fired_at_ms: Some(fired),
        resolved_at_ms: resolved,
        value: 14.4,
        inhibited_by: None,
        generator_url: "http://vigil.example:9799/api/v1/slos/checkout/availability".into(),
    }
}

fn notification(
    receiver: &str,
    group: &str,
    key: &str,
    alerts: Vec<Alert>,
    created: i64,
) -> Notification {
    let mut group_labels = BTreeMap::new();
    group_labels.insert("alertname".to_string(), group.to_string());
    Notification {
        receiver: receiver.into(),
        group_key: format!("{{}}:{{alertname=\"{group}\"}}"),
        group_labels,
        alerts,
        idempotency_key: key.into(),
        created_ms: created,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() % 1_000_000_000
    )
}

fn config(receivers_yaml: &str, delivery: DeliveryConfig) -> Arc<AlertingConfig> {
    let receivers: Vec<ReceiverConfig> =
        serde_yaml::from_str(receivers_yaml).expect("receivers yaml");
    for (i, r) in receivers.iter().enumerate() {
        let mut problems = Vec::new();
        r.validate(&format!("receivers[{i}]"), Path::new("."), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }
    Arc::new(AlertingConfig {
        receivers,
        delivery,
        ..Default::default()
    })
}

struct Running {
    outbox: Outbox,
    tx: mpsc::Sender<Notification>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(dir: &Path, cfg: Arc<AlertingConfig>) -> Running {
        let ledger = Ledger::open_sqlite(dir).await.expect("ledger");
        Self::with_ledger(ledger, cfg).await
    }

    async fn with_ledger(ledger: Ledger, cfg: Arc<AlertingConfig>) -> Running {
        let outbox = Outbox::new(cfg, ledger).await;
        let (tx, rx) = mpsc::channel(64);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(outbox.clone().run(rx, cancel.clone()));
        Running {
            outbox,
            tx,
            cancel,
            task,
        }
    }

    async fn send(&self, n: Notification) {
        self.tx.send(n).await.expect("outbox running");
    }

    async fn history(&self) -> Vec<DeliveryRecord> {
        self.outbox
            .history(&HistoryQuery {
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .expect("history")
            .notifications
    }

    /// Waits until `f` holds for the history.
    async fn until(
        &self,
        timeout: Duration,
        what: &str,
        f: impl Fn(&[DeliveryRecord]) -> bool,
    ) -> Vec<DeliveryRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let h = self.history().await;
            if f(&h) {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; history: {h:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

fn metrics(outbox: &Outbox) -> String {
    use vigil::api::metrics::{MetricsSource, MetricsWriter};
    let mut w = MetricsWriter::new();
    outbox.write_metrics(&mut w);
    w.finish()
}

fn golden(name: &str, actual: &str) {
    let path: PathBuf = common::repo().join("tests/fixtures/notify").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, actual).expect("write golden");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

const FIRED: i64 = 1_795_000_000_123; // 2026-11-18T...
const RESOLVED: i64 = 1_795_000_900_000;

// ---------------------------------------------------------------------------------------------
// Webhook.

#[tokio::test(flavor = "multi_thread")]
async fn webhook_payloads_match_golden_files() {
    let hook = Hook::start(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let delivery = DeliveryConfig {
        external_url: "http://vigil.example:9799".into(),
        ..Default::default()
    };
    let cfg = config(
        &format!(
            "- name: team\n  webhook_configs:\n    - url: {0}/all\n  min_backoff: 50ms\n- name: truncated\n  webhook_configs:\n    - url: {0}/one\n      max_alerts: 1\n",
            hook.url
        ),
        delivery,
    );
    let run = Running::start(dir.path(), cfg).await;
    let tiers = |state, resolved| {
        vec![
            alert(
                "SLOBurnRateFast",
                &[
                    ("severity", "page"),
                    ("slo", "checkout/availability"),
                    ("window", "1h"),
                ],
                state,
                FIRED,
                resolved,
            ),
            alert(
                "SLOBurnRateFast",
                &[
                    ("severity", "page"),
                    ("slo", "checkout/availability"),
                    ("window", "6h"),
                ],
                AlertState::Firing,
                FIRED + 5_000,
                None,
            ),
        ]
    };
    run.send(notification(
        "team",
        "SLOBurnRateFast",
        "golden-1",
        tiers(AlertState::Firing, None),
        FIRED,
    ))
    .await;
    run.until(Duration::from_secs(20), "firing sent", |h| {
        h.iter().any(|d| d.state == "sent")
    })
    .await;
    run.send(notification(
        "team",
        "SLOBurnRateFast",
        "golden-2",
        tiers(AlertState::Resolved, Some(RESOLVED)),
        RESOLVED,
    ))
    .await;
    run.send(notification(
        "truncated",
        "SLOBurnRateFast",
        "golden-3",
        tiers(AlertState::Firing, None),
        FIRED,
    ))
    .await;
    run.until(Duration::from_secs(20), "all sent", |h| {
        h.len() == 3 && h.iter().all(|d| d.state == "sent")
    })
    .await;
    let reqs = hook.ok();
    assert_eq!(reqs.len(), 3, "{reqs:#?}");
    let all: Vec<&Req> = reqs.iter().filter(|r| r.path == "/all").collect();
    let one = reqs
        .iter()
        .find(|r| r.path == "/one")
        .expect("truncated payload");
    golden("webhook-firing.json", &all[0].body);
    golden("webhook-resolved-one-of-two.json", &all[1].body);
    golden("webhook-truncated.json", &one.body);
    assert_eq!(
        all[0].headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(
        all[0].headers.get("idempotency-key").map(String::as_str),
        Some("golden-1/webhook[0]")
    );
    assert!(all[0].body.contains("\"endsAt\":\"0001-01-01T00:00:00Z\""));
    assert!(
        one.body.ends_with("\"truncatedAlerts\":1}\n"),
        "{}",
        one.body
    );
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_failures_are_retried_with_backoff_then_given_up() {
    // 500, a hang past the timeout, 503, then success; and a receiver that always fails.
    let hook = Hook::start(vec![
        Reply::Status(500),
        Reply::Hang(Duration::from_secs(3)),
        Reply::Status(503),
    ])
    .await;
    let down = Hook::start(vec![Reply::Status(500); 50]).await;
    let bad = Hook::start(vec![Reply::Status(400)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &format!(
            "- name: flaky\n  webhook_configs: [{{url: {}/}}]\n  min_backoff: 50ms\n  max_backoff: 200ms\n  timeout: 500ms\n\
             - name: down\n  webhook_configs: [{{url: {}/}}]\n  min_backoff: 20ms\n  max_backoff: 50ms\n  max_attempts: 3\n\
             - name: bad\n  webhook_configs: [{{url: {}/}}]\n  min_backoff: 20ms\n",
            hook.url, down.url, bad.url
        ),
        DeliveryConfig::default(),
    );
    let run = Running::start(dir.path(), cfg).await;
    let now = now_ms();
    let a = || vec![alert("Retry", &[], AlertState::Firing, now, None)];
    run.send(notification("flaky", "Retry", "retry-1", a(), now))
        .await;
    run.send(notification("down", "Retry", "retry-2", a(), now))
        .await;
    run.send(notification("bad", "Retry", "retry-3", a(), now))
        .await;
    let h = run
        .until(Duration::from_secs(30), "all settled", |h| {
            h.len() == 3 && h.iter().all(|d| d.state != "pending")
        })
        .await;
    let by = |r: &str| h.iter().find(|d| d.receiver == r).expect("row").clone();
    let flaky = by("flaky");
    assert_eq!(
        (flaky.state.as_str(), flaky.attempts),
        ("sent", 4),
        "{flaky:#?}"
    );
    assert_eq!(hook.reqs().len(), 4);
    assert_eq!(hook.ok().len(), 1);
    // Every attempt carries the same idempotency key.
    assert!(hook.reqs().iter().all(
        |r| r.headers.get("idempotency-key").map(String::as_str) == Some("retry-1/webhook[0]")
    ));
    let d = by("down");
    assert_eq!((d.state.as_str(), d.attempts), ("failed", 3), "{d:#?}");
    assert!(
        d.last_error.as_deref().unwrap_or("").contains("HTTP 500"),
        "{d:#?}"
    );
    assert_eq!(down.reqs().len(), 3);
    let b = by("bad");
    assert_eq!(
        (b.state.as_str(), b.attempts),
        ("failed", 1),
        "4xx is not retried: {b:#?}"
    );
    let m = metrics(&run.outbox);
    assert_eq!(
        common::metric_value(&m, "vigil_notifications_failed_total{receiver=\"down\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        common::metric_value(&m, "vigil_notifications_failed_total{receiver=\"bad\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        common::metric_value(
            &m,
            "vigil_notifications_sent_total{receiver=\"flaky\",integration=\"webhook\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        common::metric_value(
            &m,
            "vigil_notification_send_errors_total{receiver=\"flaky\",integration=\"webhook\"}"
        ),
        Some(3.0),
        "{m}"
    );
    run.stop().await;
}

#[test]
fn pending_notifications_survive_an_abrupt_stop_and_are_delivered_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = common::free_port();
    let keys: Vec<String> = (0..5).map(|i| format!("crash-{i}")).collect();
    // First life: the receiver is down; the runtime is torn down without any shutdown.
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let keys = keys.clone();
        let path = dir.path().to_path_buf();
        rt.block_on(async move {
            let cfg = config(
                &format!("- name: hook\n  webhook_configs: [{{url: \"http://127.0.0.1:{closed}/\"}}]\n  min_backoff: 100ms\n  max_backoff: 200ms\n  max_attempts: 1000\n"),
                DeliveryConfig::default(),
            );
            let run = Running::start(&path, cfg).await;
            let now = now_ms();
            for (i, k) in keys.iter().enumerate() {
                let g = format!("Crash{i}");
                run.send(notification("hook", &g, k, vec![alert(&g, &[], AlertState::Firing, now, None)], now)).await;
            }
            run.until(Duration::from_secs(20), "every notification attempted", |h| {
                h.len() == 5 && h.iter().all(|d| d.state == "pending" && d.attempts >= 1)
            })
            .await;
            // Dropped, not stopped: no cancel, no drain; the runtime goes away under it.
            drop(run);
        });
        rt.shutdown_background();
    }
    // Second life: same ledger file, receiver up.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(second_life(dir.path(), &keys));
}

async fn second_life(dir: &Path, keys: &[String]) {
    let hook = Hook::start(vec![]).await;
    let cfg = config(
        &format!(
            "- name: hook\n  webhook_configs: [{{url: \"{}/\"}}]\n  min_backoff: 100ms\n",
            hook.url
        ),
        DeliveryConfig::default(),
    );
    let run = Running::start(dir, cfg).await;
    run.until(
        Duration::from_secs(30),
        "all delivered after the restart",
        |h| h.len() == 5 && h.iter().all(|d| d.state == "sent"),
    )
    .await;
    // Re-enqueueing the same (group, state change) is refused by the unique key.
    let now = now_ms();
    assert!(
        !run.outbox
            .enqueue(&notification(
                "hook",
                "Crash0",
                "crash-0",
                vec![alert("Crash0", &[], AlertState::Firing, now, None)],
                now
            ))
            .await
            .expect("enqueue")
    );
    let mut seen: Vec<String> = hook
        .ok()
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    seen.sort();
    let want: Vec<String> = keys.iter().map(|k| format!("{k}/webhook[0]")).collect();
    assert_eq!(seen, want, "each pending notification exactly once");
    run.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Slack and PagerDuty (to the local receiver: their APIs are not reachable from tests).

#[tokio::test(flavor = "multi_thread")]
async fn slack_and_pagerduty_payloads() {
    let hook = Hook::start(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let slack_url = dir.path().join("slack-url");
    std::fs::write(&slack_url, format!("{}/slack\n", hook.url)).expect("write");
    let key = dir.path().join("pd-key");
    std::fs::write(&key, "R0UT1NGKEY\n").expect("write");
    let cfg = config(
        &format!(
            "- name: chat\n  slack_configs:\n    - api_url_file: {}\n      channel: '#alerts'\n      send_resolved: true\n\
             - name: pager\n  pagerduty_configs:\n    - routing_key_file: {}\n      url: {}/pd\n",
            slack_url.display(),
            key.display(),
            hook.url
        ),
        DeliveryConfig::default(),
    );
    let run = Running::start(dir.path(), cfg).await;
    let t0 = now_ms();
    let name = unique("Page");
    for (i, r) in ["chat", "pager"].iter().enumerate() {
        run.send(notification(
            r,
            &name,
            &format!("sp-{i}"),
            vec![alert(
                &name,
                &[("severity", "page")],
                AlertState::Firing,
                t0,
                None,
            )],
            t0,
        ))
        .await;
    }
    run.until(Duration::from_secs(20), "firing sent", |h| {
        h.len() == 2 && h.iter().all(|d| d.state == "sent")
    })
    .await;
    for (i, r) in ["chat", "pager"].iter().enumerate() {
        run.send(notification(
            r,
            &name,
            &format!("sp-r{i}"),
            vec![alert(
                &name,
                &[("severity", "page")],
                AlertState::Resolved,
                t0,
                Some(t0 + 1000),
            )],
            t0 + 1000,
        ))
        .await;
    }
    run.until(Duration::from_secs(20), "resolved sent", |h| {
        h.len() == 4 && h.iter().all(|d| d.state == "sent")
    })
    .await;
    let reqs = hook.ok();
    let json = |path: &str| -> Vec<serde_json::Value> {
        reqs.iter()
            .filter(|r| r.path == path)
            .map(|r| serde_json::from_str(&r.body).expect("json"))
            .collect()
    };
    let slack = json("/slack");
    assert_eq!(slack.len(), 2);
    assert_eq!(slack[0]["channel"], "#alerts");
    assert_eq!(slack[0]["attachments"][0]["color"], "danger");
    assert_eq!(slack[1]["attachments"][0]["color"], "good");
    let title = slack[0]["attachments"][0]["title"].as_str().expect("title");
    assert!(title.starts_with(&format!("[FIRING:1] {name}")), "{title}");
    assert!(
        slack[0]["attachments"][0]["text"]
            .as_str()
            .expect("text")
            .contains("value: 14.4")
    );
    let pd = json("/pd");
    assert_eq!(pd.len(), 2);
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[0]["routing_key"], "R0UT1NGKEY");
    assert_eq!(pd[0]["payload"]["severity"], "critical");
    assert_eq!(pd[1]["event_action"], "resolve");
    assert_eq!(
        pd[0]["dedup_key"], pd[1]["dedup_key"],
        "resolve closes the incident it opened"
    );
    assert_eq!(pd[0]["dedup_key"].as_str().map(str::len), Some(64));
    run.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Email to the real SMTP server.

/// Mails in `maildir/new` whose text contains `needle`.
fn mails(maildir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(maildir.join(sub)) {
            for e in rd.flatten() {
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    if text.contains(needle) {
                        out.push(text);
                    }
                }
            }
        }
    }
    out
}

/// Undoes quoted-printable (lettre's choice for these bodies): soft breaks and `=XX`.
fn qp_decode(s: &str) -> String {
    let s = s.replace("=\r\n", "").replace("=\n", "");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A header of a stored mail, unfolded.
fn header(mail: &str, name: &str) -> Option<String> {
    let mut unfolded: Vec<String> = Vec::new();
    for l in mail.lines().take_while(|l| !l.is_empty()) {
        match (l.starts_with([' ', '\t']), unfolded.last_mut()) {
            (true, Some(last)) => last.push_str(l),
            _ => unfolded.push(l.to_string()),
        }
    }
    unfolded.iter().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(": "))
            .map(str::to_string)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn email_firing_and_resolved_reach_the_smtp_server() {
    let addr = common::service("VIGIL_TEST_SMTP_ADDR", "the SMTP server");
    let maildir = PathBuf::from(common::service(
        "VIGIL_TEST_SMTP_MAILDIR",
        "the SMTP server's Maildir",
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &format!(
            "- name: mail\n  email_configs:\n    - to: 'oncall@example.com, sre@example.com'\n      cc: [lead@example.com]\n      from: 'Vigil <vigil@example.com>'\n      smarthost: {addr}\n      tls: none\n      send_resolved: true\n"
        ),
        DeliveryConfig {
            external_url: "http://vigil.example:9799".into(),
            ..Default::default()
        },
    );
    let run = Running::start(dir.path(), cfg).await;
    let name = unique("MailBurn");
    let t0 = now_ms();
    let firing = alert(
        &name,
        &[("severity", "page"), ("slo", "checkout/availability")],
        AlertState::Firing,
        t0,
        None,
    );
    run.send(notification(
        "mail",
        &name,
        &unique("mail-f"),
        vec![firing],
        t0,
    ))
    .await;
    run.until(Duration::from_secs(30), "firing mail sent", |h| {
        h.iter().any(|d| d.state == "sent")
    })
    .await;
    let resolved = alert(
        &name,
        &[("severity", "page"), ("slo", "checkout/availability")],
        AlertState::Resolved,
        t0,
        Some(t0 + 5000),
    );
    run.send(notification(
        "mail",
        &name,
        &unique("mail-r"),
        vec![resolved],
        t0 + 5000,
    ))
    .await;
    run.until(Duration::from_secs(30), "resolved mail sent", |h| {
        h.len() == 2 && h.iter().all(|d| d.state == "sent")
    })
    .await;
    let got = common::eventually(Duration::from_secs(10), "both mails in the Maildir", || {
        let m = mails(&maildir, &name);
        (m.len() == 2).then_some(m)
    });
    let fire = got
        .iter()
        .find(|m| header(m, "Subject").is_some_and(|s| s.starts_with("[FIRING:1]")))
        .expect("firing mail");
    let res = got
        .iter()
        .find(|m| header(m, "Subject").is_some_and(|s| s.starts_with("[RESOLVED:0]")))
        .expect("resolved mail");
    assert_eq!(
        header(fire, "Subject"),
        Some(format!("[FIRING:1] {name} (alertname={name})"))
    );
    assert_eq!(
        header(fire, "From").as_deref(),
        Some("Vigil <vigil@example.com>")
    );
    assert_eq!(
        header(fire, "To").as_deref(),
        Some("oncall@example.com, sre@example.com")
    );
    assert_eq!(header(fire, "Cc").as_deref(), Some("lead@example.com"));
    // aiosmtpd records the envelope recipients.
    let rcpt = header(fire, "X-RcptTo").expect("X-RcptTo");
    for r in ["oncall@example.com", "sre@example.com", "lead@example.com"] {
        assert!(rcpt.contains(r), "{rcpt}");
    }
    assert!(fire.contains("multipart/alternative"), "{fire}");
    let fire = &qp_decode(fire);
    let res = &qp_decode(res);
    for want in [
        "value: 14.4",
        "budget_remaining: 0.812",
        "slo=checkout/availability",
        "http://vigil.example:9799/api/v1/slos/checkout/availability",
        "runbook_url: https://runbooks.example/checkout",
        "<table>",
    ] {
        assert!(fire.contains(want), "missing {want:?} in\n{fire}");
    }
    assert!(res.contains("[RESOLVED] "), "{res}");
    assert!(res.contains("resolved: "), "{res}");
    run.stop().await;
}

#[test]
fn email_bodies_match_golden_files() {
    use vigil::notify::receivers::{TemplateData, email, render};
    let labels = [("severity", "page"), ("slo", "checkout/availability")];
    let n = notification(
        "mail",
        "SLOBurnRateFast",
        "k",
        vec![
            alert("SLOBurnRateFast", &labels, AlertState::Firing, FIRED, None),
            alert(
                "SLOBurnRateFast",
                &[("severity", "page"), ("slo", "search/latency")],
                AlertState::Resolved,
                FIRED,
                Some(RESOLVED),
            ),
        ],
        FIRED,
    );
    let d = TemplateData::new(&n, "http://vigil.example:9799");
    golden(
        "email-subject.txt",
        &render(email::DEFAULT_SUBJECT, &d, false),
    );
    golden("email-body.txt", &render(email::DEFAULT_TEXT, &d, false));
    golden("email-body.html", &render(email::DEFAULT_HTML, &d, true));
}

/// A child process (private aiosmtpd or Alertmanager), killed on drop.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn email_smtp_down_then_up_arrives_once() {
    // The shared services prove aiosmtpd is installed in Debian's python.
    common::service("VIGIL_TEST_SMTP_ADDR", "the SMTP server");
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("mail");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
    }
    let port = common::free_port();
    let cfg = config(
        &format!(
            "- name: mail\n  email_configs:\n    - to: oncall@example.com\n      from: vigil@example.com\n      smarthost: 127.0.0.1:{port}\n      tls: none\n  min_backoff: 200ms\n  max_backoff: 500ms\n  max_attempts: 1000\n"
        ),
        DeliveryConfig::default(),
    );
    let run = Running::start(dir.path(), cfg).await;
    let name = unique("MailLate");
    let t0 = now_ms();
    run.send(notification(
        "mail",
        &name,
        "late-1",
        vec![alert(&name, &[], AlertState::Firing, t0, None)],
        t0,
    ))
    .await;
    run.until(Duration::from_secs(20), "two failed attempts", |h| {
        h.first()
            .is_some_and(|d| d.state == "pending" && d.attempts >= 2)
    })
    .await;
    let _smtpd = KillOnDrop(
        std::process::Command::new("/usr/bin/python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .spawn()
            .expect("start aiosmtpd"),
    );
    let h = run
        .until(Duration::from_secs(30), "mail sent after recovery", |h| {
            h.first().is_some_and(|d| d.state == "sent")
        })
        .await;
    assert!(h[0].attempts >= 3, "{h:#?}");
    let got = common::eventually(
        Duration::from_secs(10),
        "the mail in the private Maildir",
        || {
            let m = mails(&maildir, &name);
            (!m.is_empty()).then_some(m)
        },
    );
    // Nothing more is sent once it is marked sent.
    run.stop().await;
    assert_eq!(mails(&maildir, &name).len(), 1, "{got:#?}");
}

// ---------------------------------------------------------------------------------------------
// Alertmanager.

async fn am_alerts(base: &str, alertname: &str) -> Vec<serde_json::Value> {
    let url = format!("{base}/api/v2/alerts?filter=alertname%3D%22{alertname}%22");
    reqwest::get(&url)
        .await
        .expect("GET alerts")
        .json::<Vec<serde_json::Value>>()
        .await
        .expect("alerts json")
}

async fn am_eventually(
    base: &str,
    name: &str,
    what: &str,
    f: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = am_alerts(base, name).await;
        if f(&a) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {a:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_push_repush_and_resolve() {
    let am = common::service("VIGIL_TEST_ALERTMANAGER_URL", "Alertmanager");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &format!("- name: am\n  alertmanager_configs:\n    - urls: ['{am}', '{am}/']\n"),
        DeliveryConfig {
            resend_interval: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let run = Running::start(dir.path(), cfg).await;
    let name = unique("AmPush");
    let t0 = now_ms();
    let labels = [("severity", "page"), ("slo", "checkout/availability")];
    run.send(notification(
        "am",
        &name,
        &unique("am-f"),
        vec![alert(&name, &labels, AlertState::Firing, t0, None)],
        t0,
    ))
    .await;
    let first = am_eventually(&am, &name, "the pushed alert", |a| a.len() == 1).await;
    assert_eq!(first[0]["labels"]["slo"], "checkout/availability");
    assert_eq!(first[0]["status"]["state"], "active");
    assert_eq!(
        first[0]["generatorURL"],
        "http://vigil.example:9799/api/v1/slos/checkout/availability"
    );
    let ends = |a: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(a["endsAt"].as_str().expect("endsAt"))
            .expect("time")
            .timestamp_millis()
    };
    let e1 = ends(&first[0]);
    assert!(
        e1 > now_ms(),
        "endsAt in the future while firing: {first:#?}"
    );
    // Re-pushed every resend interval: endsAt moves forward.
    am_eventually(&am, &name, "a re-push with a later endsAt", |a| {
        a.len() == 1 && ends(&a[0]) > e1
    })
    .await;
    // Resolved: endsAt = the resolve time, and Alertmanager drops it from its active list.
    let t1 = now_ms();
    run.send(notification(
        "am",
        &name,
        &unique("am-r"),
        vec![alert(&name, &labels, AlertState::Resolved, t0, Some(t1))],
        t1,
    ))
    .await;
    am_eventually(&am, &name, "the alert resolved", |a| a.is_empty()).await;
    // And it stays resolved (no more re-pushes of it).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(am_alerts(&am, &name).await.is_empty());
    run.stop().await;
}

/// Alertmanager's own webhook payload for the same alert, compared with ours byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn webhook_payload_is_byte_identical_to_alertmanagers() {
    common::service(
        "VIGIL_TEST_ALERTMANAGER_URL",
        "Alertmanager (its binary is used here)",
    );
    let hook = Hook::start(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let am_cfg = dir.path().join("am.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {}/am\n        send_resolved: true\n",
            hook.url
        ),
    )
    .expect("write am config");
    let _am = KillOnDrop(
        std::process::Command::new("/usr/bin/prometheus-alertmanager")
            .arg(format!("--config.file={}", am_cfg.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--web.external-url=http://vigil.example:9799")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start alertmanager"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let name = unique("AmShape");
    let t0 = now_ms() - 60_000;
    let a = alert(
        &name,
        &[("severity", "page"), ("slo", "checkout <&> availability")],
        AlertState::Firing,
        t0,
        None,
    );
    let body = serde_json::json!([{
        "labels": a.labels, "annotations": a.annotations,
        "startsAt": vigil::notify::receivers::go_time(t0),
        "generatorURL": a.generator_url,
    }])
    .to_string();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client
            .post(format!("{base}/api/v2/alerts"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "private alertmanager did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let theirs = loop {
        if let Some(r) = hook.ok().into_iter().find(|r| r.path == "/am") {
            break r.body;
        }
        assert!(Instant::now() < deadline, "alertmanager sent no webhook");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let n = notification("hook", &name, "shape", vec![a], t0);
    let ours = vigil::notify::receivers::webhook::payload(&n, "http://vigil.example:9799", 0);
    assert_eq!(ours, theirs);
}

// ---------------------------------------------------------------------------------------------
// History and retention, on SQLite and on Postgres.

async fn history_and_retention(ledger: Ledger) {
    let hook = Hook::start(vec![]).await;
    let cfg = config(
        &format!(
            "- name: a\n  webhook_configs: [{{url: \"{0}/a\"}}]\n- name: b\n  webhook_configs: [{{url: \"{0}/b\"}}, {{url: \"{0}/b2\", send_resolved: false}}]\n",
            hook.url
        ),
        DeliveryConfig::default(),
    );
    let run = Running::with_ledger(ledger, cfg).await;
    let name = unique("Hist");
    let t0 = now_ms();
    let firing = alert(&name, &[("slo", "s")], AlertState::Firing, t0, None);
    let fp = firing.fingerprint();
    run.send(notification(
        "a",
        &name,
        &format!("{name}-1"),
        vec![firing.clone()],
        t0,
    ))
    .await;
    run.send(notification(
        "b",
        &name,
        &format!("{name}-2"),
        vec![firing.clone()],
        t0,
    ))
    .await;
    // The same key again: not enqueued twice.
    run.send(notification(
        "a",
        &name,
        &format!("{name}-1"),
        vec![firing.clone()],
        t0,
    ))
    .await;
    let mine = |h: &[DeliveryRecord]| {
        h.iter()
            .filter(|d| d.idempotency_key.starts_with(&name))
            .cloned()
            .collect::<Vec<_>>()
    };
    // The resolve goes in after the firing ones are out (a pending firing one would be
    // superseded by it, by design).
    run.until(Duration::from_secs(20), "3 firing deliveries sent", |h| {
        let m = mine(h);
        m.len() == 3 && m.iter().all(|d| d.state == "sent")
    })
    .await;
    let resolved = alert(
        &name,
        &[("slo", "s")],
        AlertState::Resolved,
        t0,
        Some(t0 + 1000),
    );
    run.send(notification(
        "b",
        &name,
        &format!("{name}-3"),
        vec![resolved],
        t0 + 1000,
    ))
    .await;
    // a: 1 delivery; b: 2 for the firing one, 1 for the resolved one (b2 does not send resolved).
    run.until(Duration::from_secs(20), "4 deliveries sent", |h| {
        let m = mine(h);
        m.len() == 4 && m.iter().all(|d| d.state == "sent")
    })
    .await;
    let h = run
        .outbox
        .history(&HistoryQuery {
            fingerprint: Some(fp.clone()),
            receiver: Some("b".into()),
            ..Default::default()
        })
        .await
        .expect("history");
    assert_eq!(h.notifications.len(), 3, "{h:#?}");
    assert!(
        h.notifications
            .iter()
            .all(|d| d.receiver == "b" && d.alerts[0].fingerprint == fp)
    );
    assert_eq!(h.notifications[0].status, "resolved", "newest first");
    let t = h
        .alerts
        .iter()
        .find(|t| t.fingerprint == fp)
        .expect("timeline");
    assert_eq!(t.firings.len(), 1, "{t:#?}");
    assert_eq!(t.firings[0].ends_ms, Some(t0 + 1000));
    assert_eq!(t.firings[0].notifications, 3);
    assert_eq!(t.labels.get("slo").map(String::as_str), Some("s"));
    assert_eq!(
        hook.ok().iter().filter(|r| r.body.contains(&name)).count(),
        4
    );
    // Retention: everything before the cutoff goes, pending rows never.
    let removed = run.outbox.prune(t0 + 2000).await.expect("prune");
    assert!(removed >= 3, "{removed}");
    assert!(mine(&run.history().await).is_empty());
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn history_and_retention_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    history_and_retention(Ledger::open_sqlite(dir.path()).await.expect("ledger")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn history_and_retention_on_postgres() {
    let url = common::service("VIGIL_TEST_PG_URL", "PostgreSQL");
    // A private database: prune must not touch other tests' rows.
    let db = format!("vigil_outbox_{}_{}", std::process::id(), fastrand::u32(..));
    let psql = |sql: &str| {
        let ok = std::process::Command::new("psql")
            .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
            .status()
            .expect("run psql");
        assert!(ok.success(), "psql {sql}");
    };
    psql(&format!("CREATE DATABASE {db}"));
    let (base, _) = url.rsplit_once('/').expect("db in url");
    let ledger = Ledger::open_url(&format!("{base}/{db}"))
        .await
        .expect("ledger on postgres");
    history_and_retention(ledger.clone()).await;
    ledger.close().await;
    psql(&format!("DROP DATABASE {db} WITH (FORCE)"));
}

// ---------------------------------------------------------------------------------------------
// The HTTP API of the running daemon.

#[test]
fn history_endpoint_of_the_daemon() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("alerts.yaml"),
        "route:\n  receiver: hook\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://127.0.0.1:9/hook\ndelivery:\n  history_retention: 7d\n  external_url: http://vigil.example:9799\n",
    )
    .expect("write alerts");
    let cfg = common::write_config(dir.path(), "alerts:\n  - alerts.yaml\n");
    let d = common::Daemon::start(&cfg);
    let (code, body) = d.get("/api/v1/alerts/history?limit=10&since=2026-01-01T00:00:00Z");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "success");
    assert!(
        v["data"]["notifications"].is_array() && v["data"]["alerts"].is_array(),
        "{v}"
    );
    let (code, body) = d.get("/api/v1/alerts/history?state=lost");
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("use pending, sent, failed, superseded or skipped"),
        "{body}"
    );
    let (code, body) = d.get("/api/v1/alerts/history?color=red");
    assert_eq!(code, 400, "{body}");
}

/// STARTTLS is required by default: a server that does not offer it gets nothing in clear text.
#[tokio::test(flavor = "multi_thread")]
async fn email_starttls_is_not_silently_skipped() {
    let addr = common::service("VIGIL_TEST_SMTP_ADDR", "the SMTP server");
    let maildir = PathBuf::from(common::service(
        "VIGIL_TEST_SMTP_MAILDIR",
        "the SMTP server's Maildir",
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(
        &format!(
            "- name: mail\n  max_attempts: 1\n  email_configs:\n    - to: oncall@example.com\n      from: vigil@example.com\n      smarthost: {addr}\n"
        ),
        DeliveryConfig::default(),
    );
    let run = Running::start(dir.path(), cfg).await;
    let name = unique("MailTls");
    let t0 = now_ms();
    run.send(notification(
        "mail",
        &name,
        "tls-1",
        vec![alert(&name, &[], AlertState::Firing, t0, None)],
        t0,
    ))
    .await;
    let h = run
        .until(Duration::from_secs(20), "the delivery failed", |h| {
            h.first().is_some_and(|d| d.state == "failed")
        })
        .await;
    let err = h[0].last_error.clone().unwrap_or_default();
    assert!(err.contains(&addr), "{err}");
    assert!(mails(&maildir, &name).is_empty());
    run.stop().await;
}
