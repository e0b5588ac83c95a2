//! Leader election between two aggregators on one Postgres ledger (`agent.leader_election`),
//! through the real binary and the real Postgres: a node agent runs the demo at a 50% error
//! rate and writes its buckets to a private database; both aggregators evaluate them and track
//! the burn-rate alert, exactly one leads and notifies a webhook receiver (a real HTTP server
//! in this test that records every POST). The receiver first refuses (503), so the firing
//! notification is still pending in the ledger when the leader is SIGKILLed: the other
//! aggregator must take over, deliver that pending notification once, and later the resolved
//! notice once, with no notification ever delivered twice.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Daemon, eventually, http_post, metric_value};
use serde_json::Value;

const RULES: &str = r#"
service: shop
slos:
  - name: availability
    objective: 99
    window: 1h
    min_events: 10
    alerts:
      tiers:
        page_fast: {enabled: false}
        quick: {long_window: 2m, short_window: 1m, factor: 10, severity: page}
        slower: {long_window: 3m, short_window: 1m, factor: 5, severity: ticket}
      budget_exhausted: {enabled: false}
    sli:
      ratio:
        errors: http_requests_total{job="shop",code=~"5.."}
        total: http_requests_total{job="shop"}
"#;

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Post {
    accepted: bool,
    key: String,
    group_key: String,
    status: String,
    /// `severity` of each alert in it.
    severities: Vec<String>,
}

impl Post {
    /// The episode of its group (`|eN` in the idempotency key; 0 for the first incident).
    fn episode(&self) -> u32 {
        self.key
            .trim_end_matches("/webhook[0]")
            .split('|')
            .filter_map(|s| s.strip_prefix('e')?.parse().ok())
            .next_back()
            .unwrap_or(0)
    }
}

/// A webhook receiver: records every POST; answers 503 until `accept` is set, then 200.
struct Hook {
    url: String,
    posts: Arc<Mutex<Vec<Post>>>,
    accept: Arc<AtomicBool>,
}

impl Hook {
    fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hook");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let posts = Arc::new(Mutex::new(Vec::new()));
        let accept = Arc::new(AtomicBool::new(false));
        let (p, a) = (posts.clone(), accept.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (p, a) = (p.clone(), a.clone());
                std::thread::spawn(move || serve(stream, &p, &a));
            }
        });
        Hook { url, posts, accept }
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("posts").clone()
    }

    fn delivered(&self) -> Vec<Post> {
        self.posts().into_iter().filter(|p| p.accepted).collect()
    }
}

fn serve(stream: std::net::TcpStream, posts: &Mutex<Vec<Post>>, accept: &AtomicBool) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let accepted = accept.load(Ordering::SeqCst);
        posts.lock().expect("posts").push(Post {
            accepted,
            key: headers.get("idempotency-key").cloned().unwrap_or_default(),
            group_key: v["groupKey"].as_str().unwrap_or_default().to_string(),
            status: v["status"].as_str().unwrap_or_default().to_string(),
            severities: v["alerts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x["labels"]["severity"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default(),
        });
        let reply = if accepted {
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
        } else {
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
        };
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A private database on the shared server, dropped at the end: the outbox tables of other
/// tests' daemons must not see (or deliver) this test's notifications.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create(admin: &str) -> Database {
        let name = format!("vigil_leader_{}_{}", std::process::id(), fastrand::u32(..));
        psql(admin, &format!("CREATE DATABASE {name}"));
        let (base, _) = admin.rsplit_once('/').expect("database in the URL");
        Database {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                self.admin.as_str(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}

fn psql(url: &str, sql: &str) {
    let ok = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .status()
        .expect("run psql");
    assert!(ok.success(), "psql {sql}");
}

fn config(dir: &Path, name: &str, agent: &str, rest: &str) -> std::path::PathBuf {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).expect("mkdir");
    std::fs::write(sub.join("slo.yaml"), RULES).expect("rules");
    common::write_config(&sub, &format!("{agent}{rest}rules: [slo.yaml]\n"))
}

fn leader_gauge(d: &Daemon) -> Option<f64> {
    let (code, body) = d.get("/metrics");
    (code == 200).then(|| metric_value(&body, "vigil_leader"))?
}

fn alert_names(d: &Daemon) -> String {
    d.get("/api/v1/alerts").1
}

#[test]
fn one_leader_notifies_once_and_the_other_takes_over_when_it_is_killed() {
    let pg = common::service("VIGIL_TEST_PG_URL", "PostgreSQL");
    let db = Database::create(&pg);
    let env = [("VIGIL_TEST_LEDGER_URL", db.url.as_str())];
    let hook = Hook::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let u = format!("{}-{}", std::process::id(), fastrand::u32(..));

    let demo = common::free_port();
    let node = config(
        dir.path(),
        "node",
        &format!("  id: node-{u}\n  role: node\n  ledger_url_env: VIGIL_TEST_LEDGER_URL\n"),
        &format!(
            "demo:\n  enabled: true\n  listen: 127.0.0.1:{demo}\n  requests_per_second: 200\n  error_rate: 0.5\n\
             scrape:\n  targets:\n    - job: shop\n      urls: [http://127.0.0.1:{demo}/metrics]\n      interval: 1s\n      timeout: 900ms\n"
        ),
    );
    let alerts = format!(
        "route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: 1s\n  group_interval: 5s\n  repeat_interval: 4h\n\
         receivers:\n  - name: hook\n    min_backoff: 200ms\n    max_backoff: 1s\n    max_attempts: 100000\n    webhook_configs:\n      - url: {}\n        send_resolved: true\n",
        hook.url
    );
    let aggregator = |name: &str| {
        let path = config(
            dir.path(),
            name,
            &format!(
                "  id: {name}-{u}\n  role: aggregator\n  ledger_url_env: VIGIL_TEST_LEDGER_URL\n\
                 \x20 leader_election:\n    enabled: true\n    renew_deadline: 4s\n    retry_period: 1s\n"
            ),
            "alerts: [alerts.yaml]\n",
        );
        std::fs::write(dir.path().join(name).join("alerts.yaml"), &alerts).expect("alerts");
        path
    };
    let (cfg_a, cfg_b) = (aggregator("agg-a"), aggregator("agg-b"));

    let n = Daemon::start_with_env(&node, &env);
    let mut a = Daemon::start_with_env(&cfg_a, &env);
    let mut b = Daemon::start_with_env(&cfg_b, &env);

    // Exactly one leads; the status API says so too.
    let (leader_is_a, _) = eventually(Duration::from_secs(30), "exactly one leader", || {
        let (ga, gb) = (leader_gauge(&a)?, leader_gauge(&b)?);
        (ga + gb == 1.0).then_some((ga == 1.0, ()))
    });
    let (leader, follower) = if leader_is_a { (&a, &b) } else { (&b, &a) };
    let (_, status) = leader.get("/api/v1/status/leader");
    let status: Value = serde_json::from_str(&status).expect("status json");
    assert_eq!(status["data"]["role"], "aggregator", "{status}");
    assert_eq!(status["data"]["leader"], true, "{status}");
    let (_, fstatus) = follower.get("/api/v1/status/leader");
    let fstatus: Value = serde_json::from_str(&fstatus).expect("status json");
    assert_eq!(fstatus["data"]["leader"], false, "{fstatus}");
    assert_eq!(fstatus["data"]["enabled"], true, "{fstatus}");
    assert_eq!(
        status["data"]["lockKey"], fstatus["data"]["lockKey"],
        "same lock"
    );

    // The alert fires on both (followers evaluate and track alerts too); only the leader tries
    // to notify, and the receiver refuses for now.
    eventually(Duration::from_secs(180), "a notification attempt", || {
        (!hook.posts().is_empty()).then_some(())
    });
    for d in [leader, follower] {
        eventually(Duration::from_secs(30), "the alert on both", || {
            alert_names(d).contains("SLOBurnRateHigh").then_some(())
        });
    }
    let (_, fm) = follower.get("/metrics");
    assert_eq!(metric_value(&fm, "vigil_leader"), Some(0.0));
    assert_eq!(
        metric_value(&fm, "vigil_notification_send_errors_total"),
        None,
        "the follower sends nothing:\n{fm}"
    );
    let (_, lm) = leader.get("/metrics");
    assert!(
        metric_value(&lm, "vigil_notification_send_errors_total").unwrap_or(0.0) >= 1.0,
        "the leader tried:\n{lm}"
    );
    assert!(hook.delivered().is_empty());
    let first = hook.posts()[0].clone();
    assert_eq!(first.status, "firing", "{first:?}");

    // SIGKILL the leader while its notification is pending in the ledger.
    let killed_leader_was_a = leader_is_a;
    let (dead, survivor) = if killed_leader_was_a {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let killed_at = std::time::Instant::now();
    dead.signal("KILL");
    dead.wait_exit(Duration::from_secs(10));
    hook.accept.store(true, Ordering::SeqCst);
    // renew_deadline 4s + retry_period 1s, with slack for a loaded machine: Postgres frees the
    // lock as soon as it sees the killed process's socket close.
    eventually(Duration::from_secs(30), "the survivor leads", || {
        (leader_gauge(survivor)? == 1.0).then_some(())
    });
    // Measured, not asserted: the time from SIGKILL to the survivor's gauge reading 1.
    eprintln!("handover after SIGKILL: {:?}", killed_at.elapsed());
    survivor.wait_for_log("became the leader", Duration::from_secs(5));
    let (_, sm) = survivor.get("/metrics");
    assert_eq!(
        metric_value(&sm, "vigil_leader_transitions_total"),
        Some(1.0),
        "{sm}"
    );

    // The pending firing notification is delivered by the new leader, once.
    let firing = eventually(Duration::from_secs(60), "the firing notification", || {
        hook.delivered().into_iter().find(|p| p.status == "firing")
    });
    assert_eq!(
        firing.key, first.key,
        "the new leader sent the old leader's pending delivery (same Idempotency-Key)"
    );

    // The errors stop: the resolved notice comes from the new leader, once.
    let (code, _) = http_post(&format!("{}/demo/error-rate", n.url), "0");
    assert_eq!(code, 200);
    eventually(
        Duration::from_secs(300),
        "the resolved notification",
        || {
            hook.delivered()
                .into_iter()
                .find(|p| p.status == "resolved")
        },
    );
    // Give a duplicate the time to show up: several group intervals.
    std::thread::sleep(Duration::from_secs(12));
    // One group per alert (group_by: ['...']): each is told it fires once and resolves once
    // per episode; the page's group is the one whose notification was pending at the kill.
    let delivered = hook.delivered();
    let mut seen = BTreeMap::new();
    for p in &delivered {
        *seen
            .entry((p.group_key.clone(), p.status.clone(), p.episode()))
            .or_insert(0) += 1;
    }
    assert!(
        seen.values().all(|n| *n == 1),
        "a notification was delivered twice: {delivered:?}"
    );
    let page: Vec<&Post> = delivered
        .iter()
        .filter(|p| p.group_key == firing.group_key)
        .collect();
    assert_eq!(
        page.iter().map(|p| p.status.as_str()).collect::<Vec<_>>(),
        ["firing", "resolved"],
        "{delivered:?}"
    );
    assert_eq!(
        firing.severities.len(),
        1,
        "one alert per group: {firing:?}"
    );
    assert!(
        !survivor.log_text().contains(&db.url) && !survivor.log_text().contains(":vigil@"),
        "no ledger URL with its password in the log"
    );
}

/// A clean stop releases the lock at once (no waiting for the session to time out), and the
/// stopping leader reports the release.
#[test]
fn a_clean_stop_hands_over_at_once() {
    let pg = common::service("VIGIL_TEST_PG_URL", "PostgreSQL");
    let db = Database::create(&pg);
    let env = [("VIGIL_TEST_LEDGER_URL", db.url.as_str())];
    let dir = tempfile::tempdir().expect("tempdir");
    let agg = |name: &str| {
        config(
            dir.path(),
            name,
            &format!(
                "  id: {name}\n  role: aggregator\n  ledger_url_env: VIGIL_TEST_LEDGER_URL\n\
                 \x20 leader_election:\n    enabled: true\n    lock_name: clean-stop\n    renew_deadline: 30s\n    retry_period: 1s\n"
            ),
            "",
        )
    };
    let mut a = Daemon::start_with_env(&agg("a"), &env);
    eventually(Duration::from_secs(30), "a leads", || {
        (leader_gauge(&a)? == 1.0).then_some(())
    });
    let b = Daemon::start_with_env(&agg("b"), &env);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(leader_gauge(&b), Some(0.0), "b follows while a leads");
    assert_eq!(leader_gauge(&a), Some(1.0));
    a.signal("TERM");
    assert!(a.wait_exit(Duration::from_secs(20)).success());
    assert!(
        a.log_text().contains("leader election: lock released"),
        "{}",
        a.log_text()
    );
    // b takes over at its next try, far sooner than renew_deadline (30s) would allow if the
    // lock had to time out; the test only asserts that it happens.
    let stopped_at = std::time::Instant::now();
    eventually(Duration::from_secs(20), "b leads", || {
        (leader_gauge(&b)? == 1.0).then_some(())
    });
    eprintln!("handover after a clean stop: {:?}", stopped_at.elapsed());
}

/// A TCP proxy to Postgres that can be frozen (bytes stop flowing both ways, sockets stay
/// open: a network partition as both ends see it) and cut (every socket closed).
struct Proxy {
    addr: String,
    frozen: Arc<AtomicBool>,
    cut: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("addr").to_string();
        let frozen = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let (f, c, up) = (frozen.clone(), cut.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = std::net::TcpStream::connect(&up) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    let (f, c) = (f.clone(), c.clone());
                    std::thread::spawn(move || pipe(from, to, &f, &c));
                }
            }
        });
        Proxy { addr, frozen, cut }
    }
}

fn pipe(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    frozen: &AtomicBool,
    cut: &AtomicBool,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 16384];
    loop {
        if cut.load(Ordering::SeqCst) {
            let _ = from.shutdown(std::net::Shutdown::Both);
            let _ = to.shutdown(std::net::Shutdown::Both);
            return;
        }
        if frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(std::net::Shutdown::Both);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                let _ = to.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }
}

/// A leader cut off from Postgres steps down after renew_deadline, while its session (kept
/// open by the partition) still holds the lock: at no time do both replicas lead. Once the
/// session ends the other replica leads.
#[test]
fn a_partitioned_leader_steps_down_and_never_overlaps() {
    let pg = common::service("VIGIL_TEST_PG_URL", "PostgreSQL");
    let db = Database::create(&pg);
    let (userinfo, rest) = db.url.split_once('@').expect("user@host in the URL");
    let (hostport, path) = rest.split_once('/').expect("host/db in the URL");
    let proxy = Proxy::start(hostport);
    let via_proxy = format!("{userinfo}@{}/{path}", proxy.addr);
    let dir = tempfile::tempdir().expect("tempdir");
    let agg = |name: &str| {
        config(
            dir.path(),
            name,
            &format!(
                "  id: {name}\n  role: aggregator\n  ledger_url_env: VIGIL_TEST_LEDGER_URL\n\
                 \x20 leader_election:\n    enabled: true\n    renew_deadline: 3s\n    retry_period: 1s\n"
            ),
            "",
        )
    };
    let a = Daemon::start_with_env(&agg("a"), &[("VIGIL_TEST_LEDGER_URL", &via_proxy)]);
    eventually(Duration::from_secs(30), "a leads", || {
        (leader_gauge(&a)? == 1.0).then_some(())
    });
    let b = Daemon::start_with_env(&agg("b"), &[("VIGIL_TEST_LEDGER_URL", &db.url)]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(leader_gauge(&b), Some(0.0));

    proxy.frozen.store(true, Ordering::SeqCst);
    let frozen_at = std::time::Instant::now();
    // Poll both until a steps down; they must never lead together.
    eventually(Duration::from_secs(30), "a steps down", || {
        let (ga, gb) = (leader_gauge(&a)?, leader_gauge(&b)?);
        assert!(ga + gb <= 1.0, "two leaders at once");
        (ga == 0.0).then_some(())
    });
    eprintln!(
        "partitioned leader stepped down after {:?}",
        frozen_at.elapsed()
    );
    assert!(
        a.log_text()
            .contains("could not confirm the lock within renew_deadline"),
        "{}",
        a.log_text()
    );
    // The partitioned session still holds the lock: b cannot lead yet.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        leader_gauge(&b),
        Some(0.0),
        "b leads while a's session lives"
    );

    // The session ends (as after the server's TCP keepalives): b leads, a does not.
    proxy.cut.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(30), "b leads", || {
        let (ga, gb) = (leader_gauge(&a)?, leader_gauge(&b)?);
        assert!(ga + gb <= 1.0, "two leaders at once");
        (gb == 1.0).then_some(())
    });
}
