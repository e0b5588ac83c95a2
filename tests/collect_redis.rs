//! The `type: redis` collector against real servers: the shared test Redis
//! (`VIGIL_TEST_REDIS_URL`), private `redis-server` instances for restarts and passwords, and
//! the Debian redis_exporter for name/type/label compatibility.
//!
//! Other tests share the Redis server: every key here carries a prefix unique to the test run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Daemon, eventually, metric_value};

const WAIT: Duration = Duration::from_secs(30);

fn redis_url() -> String {
    common::service("VIGIL_TEST_REDIS_URL", "the test Redis server")
}

/// A key prefix unique to this test run and test.
fn prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("vigiltest:{test}:{}:{nanos}", std::process::id())
}

fn client(url: &str, db: u32) -> redis::Connection {
    let url = format!("{}/{db}", url.trim_end_matches('/'));
    redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

fn run(conn: &mut redis::Connection, args: &[&str]) -> redis::Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(conn).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Deletes every key with `prefix` in `db` (best effort, at the end of a test).
fn cleanup(url: &str, db: u32, prefix: &str) {
    let mut c = client(url, db);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut c)
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<i64, _> = redis::cmd("DEL").arg(chunk).query(&mut c);
    }
}

/// Starts a daemon with one collectors block; `env` holds the URL variables.
fn daemon(dir: &Path, collectors: &str, env: &[(&str, &str)]) -> Daemon {
    let config = common::write_config(dir, &format!("collectors:\n{collectors}"));
    Daemon::start_with_env(&config, env)
}

fn metrics(d: &Daemon) -> String {
    d.get("/metrics").1
}

fn wait_value(d: &Daemon, series: &str, want: f64) {
    let mut last = None;
    eventually(WAIT, &format!("{series} == {want}"), || {
        let text = metrics(d);
        last = metric_value(&text, series);
        (last == Some(want)).then_some(())
    });
}

/// A private redis-server, killed on drop.
struct PrivateRedis {
    child: Option<Child>,
    port: u16,
    /// `port` is the TLS port (the plain port is off).
    tls: bool,
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start(extra: &[&str]) -> Self {
        Self::start_with(false, extra)
    }

    fn start_with(tls: bool, extra: &[&str]) -> Self {
        let mut r = PrivateRedis {
            child: None,
            port: common::free_port(),
            tls,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let bin = common::service("VIGIL_TEST_REDIS_SERVER", "the redis-server binary");
        let port = self.port.to_string();
        let ports: [&str; 4] = if self.tls {
            ["--port", "0", "--tls-port", &port]
        } else {
            ["--port", &port, "--bind", "127.0.0.1"]
        };
        let child = Command::new(bin)
            .args(ports)
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        eventually(WAIT, "private redis-server accepting", || {
            std::net::TcpStream::connect(&addr).ok().map(|_| ())
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn info_metrics_move_with_load() {
    let url = redis_url();
    let bench = common::service("VIGIL_TEST_REDIS_BENCHMARK", "redis-benchmark");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = daemon(
        dir.path(),
        "  - {name: load, type: redis, interval: 1s, timeout: 1s, url_env: VIGIL_RT_URL}\n",
        &[("VIGIL_RT_URL", &url)],
    );
    let before = eventually(WAIT, "first redis collection", || {
        let text = metrics(&d);
        (metric_value(&text, "redis_up{instance=\"load\",job=\"redis\"}") == Some(1.0))
            .then(|| {
                metric_value(
                    &text,
                    "redis_commands_processed_total{instance=\"load\",job=\"redis\"}",
                )
            })
            .flatten()
    });
    let text = metrics(&d);
    let lpush_before = metric_value(
        &text,
        "redis_commands_total{cmd=\"lpush\",instance=\"load\",job=\"redis\"}",
    )
    .unwrap_or(0.0);
    for name in [
        "redis_uptime_in_seconds",
        "redis_connected_clients",
        "redis_blocked_clients",
        "redis_memory_used_bytes",
        "redis_memory_max_bytes",
        "redis_keyspace_hits_total",
        "redis_keyspace_misses_total",
        "redis_evicted_keys_total",
        "redis_expired_keys_total",
        "redis_connected_slaves",
        "redis_db_keys{db=\"db15\",instance=\"load\",job=\"redis\"}",
        "redis_db_keys_expiring{db=\"db0\",instance=\"load\",job=\"redis\"}",
        "redis_instance_info",
    ] {
        assert!(
            metric_value(&text, name).is_some(),
            "{name} missing:\n{text}"
        );
    }
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("port in URL")
        .to_string();
    let status = Command::new(&bench)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-n",
            "2000",
            "-c",
            "4",
            "-q",
        ])
        .args(["-t", "lpush,get", "-r", "100000"])
        .stdout(Stdio::null())
        .status()
        .expect("run redis-benchmark");
    assert!(status.success(), "redis-benchmark failed");
    eventually(WAIT, "commands_total to grow by the benchmark", || {
        let text = metrics(&d);
        let lpush = metric_value(
            &text,
            "redis_commands_total{cmd=\"lpush\",instance=\"load\",job=\"redis\"}",
        )?;
        let total = metric_value(
            &text,
            "redis_commands_processed_total{instance=\"load\",job=\"redis\"}",
        )?;
        (lpush >= lpush_before + 2000.0 && total >= before + 4000.0).then_some(())
    });
    let text = metrics(&d);
    assert!(
        metric_value(
            &text,
            "redis_commands_duration_seconds_total{cmd=\"lpush\",instance=\"load\",job=\"redis\"}"
        )
        .is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "vigil_collector_success{collector=\"load\",type=\"redis\"}"
        ),
        Some(1.0)
    );
    // redis-benchmark writes to keys "mylist"/"key:..." in db 0; leave them, they are its own.
}

#[test]
fn queue_depth_follows_lists_streams_and_bullmq() {
    let url = redis_url();
    let p = prefix("depth");
    let db = 5;
    let mut c = client(&url, db);
    let (list, stream, missing) = (
        format!("{p}:jobs"),
        format!("{p}:events"),
        format!("{p}:nope"),
    );
    let bull = format!("{p}:bull");
    run(&mut c, &["LPUSH", &list, "a", "b", "c"]);
    for i in 0..3 {
        run(&mut c, &["XADD", &stream, "*", "n", &i.to_string()]);
    }
    run(&mut c, &["XGROUP", "CREATE", &stream, "workers", "0"]);
    for k in ["h1", "h2"] {
        run(&mut c, &["SADD", &format!("{p}:set:{k}"), "x", "y"]);
    }
    run(&mut c, &["LPUSH", &format!("{bull}:mail:wait"), "1", "2"]);
    run(&mut c, &["LPUSH", &format!("{bull}:mail:active"), "3"]);
    run(&mut c, &["ZADD", &format!("{bull}:mail:delayed"), "1", "4"]);
    run(
        &mut c,
        &[
            "ZADD",
            &format!("{bull}:mail:completed"),
            "1",
            "5",
            "2",
            "6",
            "3",
            "7",
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "  - name: depth\n    type: redis\n    interval: 1s\n    timeout: 1s\n    url_env: VIGIL_RT_URL\n    keys:\n      - {{db: {db}, key: \"{list}\"}}\n      - {{db: {db}, key: \"{stream}\"}}\n      - {{db: {db}, key: \"{missing}\"}}\n      - {{db: {db}, pattern: \"{p}:set:*\"}}\n    bullmq: [mail, empty]\n    bullmq_prefix: \"{bull}\"\n"
    );
    // BullMQ queues live in the URL's database.
    let db_url = format!("{}/{db}", url.trim_end_matches('/'));
    let d = daemon(dir.path(), &yaml, &[("VIGIL_RT_URL", &db_url)]);
    let key = |k: &str| {
        format!("redis_key_size{{db=\"db{db}\",instance=\"depth\",job=\"redis\",key=\"{k}\"}}")
    };
    wait_value(&d, &key(&list), 3.0);
    wait_value(&d, &key(&stream), 3.0);
    wait_value(&d, &key(&missing), 0.0);
    wait_value(&d, &key(&format!("{p}:set:h1")), 2.0);
    wait_value(
        &d,
        &format!(
            "redis_keys_count{{db=\"db{db}\",instance=\"depth\",job=\"redis\",key=\"{p}:set:*\"}}"
        ),
        2.0,
    );
    let bullq = |q: &str, s: &str| {
        format!("bullmq_queue_jobs{{instance=\"depth\",job=\"redis\",queue=\"{q}\",state=\"{s}\"}}")
    };
    wait_value(&d, &bullq("mail", "wait"), 2.0);
    wait_value(&d, &bullq("mail", "active"), 1.0);
    wait_value(&d, &bullq("mail", "delayed"), 1.0);
    wait_value(&d, &bullq("mail", "completed"), 3.0);
    wait_value(&d, &bullq("mail", "failed"), 0.0);
    for s in [
        "wait",
        "active",
        "delayed",
        "failed",
        "completed",
        "paused",
        "prioritized",
    ] {
        wait_value(&d, &bullq("empty", s), 0.0);
    }
    let group = |m: &str| {
        format!(
            "{m}{{db=\"db{db}\",group=\"workers\",instance=\"depth\",job=\"redis\",stream=\"{stream}\"}}"
        )
    };
    wait_value(&d, &group("redis_stream_group_messages_pending"), 0.0);
    wait_value(&d, &group("redis_stream_group_lag"), 3.0);

    // The list drains, the stream is consumed and acknowledged.
    run(&mut c, &["LPOP", &list]);
    run(&mut c, &["ZADD", &format!("{bull}:mail:failed"), "1", "8"]);
    let read = run(
        &mut c,
        &[
            "XREADGROUP",
            "GROUP",
            "workers",
            "w1",
            "COUNT",
            "2",
            "STREAMS",
            &stream,
            ">",
        ],
    );
    wait_value(&d, &key(&list), 2.0);
    wait_value(&d, &bullq("mail", "failed"), 1.0);
    wait_value(&d, &group("redis_stream_group_messages_pending"), 2.0);
    wait_value(&d, &group("redis_stream_group_lag"), 1.0);
    wait_value(&d, &group("redis_stream_group_consumers"), 1.0);
    let ids = stream_ids(read);
    assert_eq!(ids.len(), 2, "XREADGROUP returned two entries");
    run(&mut c, &["XACK", &stream, "workers", &ids[0]]);
    wait_value(&d, &group("redis_stream_group_messages_pending"), 1.0);
    run(&mut c, &["XADD", &stream, "*", "n", "4"]);
    wait_value(&d, &key(&stream), 4.0);
    wait_value(
        &d,
        &format!(
            "redis_stream_length{{db=\"db{db}\",instance=\"depth\",job=\"redis\",stream=\"{stream}\"}}"
        ),
        4.0,
    );
    // The key appears once created.
    run(&mut c, &["RPUSH", &missing, "z"]);
    wait_value(&d, &key(&missing), 1.0);
    cleanup(&url, db, &p);
}

/// Entry ids of an `XREADGROUP` reply.
fn stream_ids(v: redis::Value) -> Vec<String> {
    let mut ids = Vec::new();
    fn walk(v: &redis::Value, ids: &mut Vec<String>, depth: usize) {
        if let redis::Value::Array(items) = v {
            // [[stream, [[id, [fields]], ...]]]
            if depth == 3 {
                if let Some(redis::Value::BulkString(id)) = items.first() {
                    ids.push(String::from_utf8_lossy(id).into_owned());
                }
                return;
            }
            for i in items {
                walk(i, ids, depth + 1);
            }
        }
    }
    walk(&v, &mut ids, 0);
    ids
}

#[test]
fn scan_limit_bounds_a_huge_keyspace() {
    let url = redis_url();
    let p = prefix("scan");
    let db = 6;
    let mut c = client(&url, db);
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("SET").arg(format!("{p}:k{i}")).arg(i).ignore();
    }
    let () = pipe.query(&mut c).expect("fill keyspace");
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "  - name: huge\n    type: redis\n    interval: 1s\n    timeout: 1s\n    url_env: VIGIL_RT_URL\n    scan_limit: 300\n    keys:\n      - {{db: {db}, pattern: \"{p}:*\"}}\n"
    );
    let mut d = daemon(dir.path(), &yaml, &[("VIGIL_RT_URL", &url)]);
    let series = format!(
        "redis_keys_scan_truncated{{db=\"db{db}\",instance=\"huge\",job=\"redis\",key=\"{p}:*\"}}"
    );
    wait_value(&d, &series, 1.0);
    let text = metrics(&d);
    let count = metric_value(
        &text,
        &format!("redis_keys_count{{db=\"db{db}\",instance=\"huge\",job=\"redis\",key=\"{p}:*\"}}"),
    )
    .expect("keys_count");
    assert!(
        count <= 300.0,
        "at most scan_limit keys reported, got {count}"
    );
    let sizes = text
        .lines()
        .filter(|l| l.starts_with("redis_key_size{") && l.contains(&p))
        .count();
    assert!(sizes <= 300, "{sizes} key_size series");
    assert_eq!(
        metric_value(&text, "redis_up{instance=\"huge\",job=\"redis\"}"),
        Some(1.0)
    );
    d.wait_for_log("scan_limit", WAIT);
    // Logged once, not at every collection.
    std::thread::sleep(Duration::from_secs(3));
    let warnings = d
        .log_lines()
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("stopped at scan_limit"))
        .count();
    assert_eq!(warnings, 1, "{}", d.log_text());
    cleanup(&url, db, &p);
}

#[test]
fn restarted_server_is_picked_up_again() {
    let mut server = PrivateRedis::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = server.url();
    let d = daemon(
        dir.path(),
        "  - {name: private, type: redis, interval: 1s, timeout: 1s, url_env: VIGIL_RT_URL}\n",
        &[("VIGIL_RT_URL", &url)],
    );
    let up = "redis_up{instance=\"private\",job=\"redis\"}";
    wait_value(&d, up, 1.0);
    server.stop();
    wait_value(&d, up, 0.0);
    let text = metrics(&d);
    // A failed collection publishes redis_up alone.
    assert_eq!(
        metric_value(
            &text,
            "redis_uptime_in_seconds{instance=\"private\",job=\"redis\"}"
        ),
        None
    );
    server.spawn();
    wait_value(&d, up, 1.0);
    let text = metrics(&d);
    assert!(
        metric_value(
            &text,
            "redis_uptime_in_seconds{instance=\"private\",job=\"redis\"}"
        )
        .is_some(),
        "{text}"
    );
    assert!(
        d.log_text()
            .contains("redis collector private: redis://127.0.0.1:"),
        "{}",
        d.log_text()
    );
}

#[test]
fn bad_inputs_give_clear_errors_and_the_agent_keeps_running() {
    let server = PrivateRedis::start(&["--requirepass", "s3cretpw"]);
    let shared = redis_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = format!("redis://:wrongpw@127.0.0.1:{}/", server.port);
    let right = format!("redis://:s3cretpw@127.0.0.1:{}/", server.port);
    std::fs::write(dir.path().join("wrong.url"), format!("{wrong}\n")).expect("write");
    let closed = format!("redis://127.0.0.1:{}/", common::free_port());
    let tls = shared.replacen("redis://", "rediss://", 1);
    let yaml = format!(
        "  - {{name: wrongpass, type: redis, interval: 1s, timeout: 1s, url_file: {}}}\n  - {{name: nopass, type: redis, interval: 1s, timeout: 1s, url_env: VIGIL_RT_NOPASS}}\n  - {{name: closed, type: redis, interval: 1s, timeout: 1s, url_env: VIGIL_RT_CLOSED}}\n  - {{name: tlsplain, type: redis, interval: 2s, timeout: 2s, connect_timeout: 500ms, url_env: VIGIL_RT_TLS, insecure_skip_verify: true}}\n  - {{name: rightpass, type: redis, interval: 1s, timeout: 1s, url_env: VIGIL_RT_RIGHT}}\n",
        dir.path().join("wrong.url").display()
    );
    let d = daemon(
        dir.path(),
        &yaml,
        &[
            ("VIGIL_RT_NOPASS", server.url().as_str()),
            ("VIGIL_RT_CLOSED", closed.as_str()),
            ("VIGIL_RT_TLS", tls.as_str()),
            ("VIGIL_RT_RIGHT", right.as_str()),
        ],
    );
    wait_value(&d, "redis_up{instance=\"rightpass\",job=\"redis\"}", 1.0);
    for name in ["wrongpass", "nopass", "closed", "tlsplain"] {
        wait_value(
            &d,
            &format!("redis_up{{instance=\"{name}\",job=\"redis\"}}"),
            0.0,
        );
    }
    let log = eventually(WAIT, "an error logged for every bad collector", || {
        let log = d.log_text();
        ["wrongpass", "nopass", "closed", "tlsplain"]
            .iter()
            .all(|n| log.contains(&format!("redis collector {n}:")))
            .then_some(log)
    });
    let line = |name: &str| {
        log.lines()
            .find(|l| l.contains(&format!("redis collector {name}:")))
            .unwrap_or_default()
            .to_string()
    };
    let port = server.port.to_string();
    let wrongpass = line("wrongpass");
    assert!(
        wrongpass.contains("AUTH/SELECT failed") && wrongpass.contains(&port),
        "{wrongpass}"
    );
    assert!(line("nopass").contains("NOAUTH"), "{}", line("nopass"));
    assert!(
        line("closed").contains("cannot connect to redis://127.0.0.1:"),
        "{}",
        line("closed")
    );
    let tls_line = line("tlsplain");
    assert!(
        tls_line.contains("no answer from rediss://")
            && tls_line.contains("serves TLS on this port"),
        "{tls_line}"
    );
    assert!(
        !log.contains("wrongpw") && !log.contains("s3cretpw"),
        "password in the log:\n{log}"
    );
    let (status, body) = d.get("/metrics");
    assert_eq!(status, 200);
    assert!(!body.contains("s3cretpw") && !body.contains("wrongpw"));
    let (status, _) = d.get("/api/v1/collectors");
    assert_eq!(status, 200);
}

/// `name -> (type, label names)` of a Prometheus text exposition, without job/instance.
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(n), Some(t)) = (parts.next(), parts.next()) {
                out.entry(n.to_string()).or_default().0 = t.to_string();
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let labels: BTreeSet<String> = if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').unwrap_or(line.len())];
            let mut names = BTreeSet::new();
            let mut in_value = false;
            let mut escaped = false;
            let mut current = String::new();
            for ch in body.chars() {
                if in_value {
                    if escaped {
                        escaped = false;
                    } else if ch == '\\' {
                        escaped = true;
                    } else if ch == '"' {
                        in_value = false;
                    }
                } else if ch == '"' {
                    in_value = true;
                } else if ch == '=' {
                    names.insert(current.trim().to_string());
                    current.clear();
                } else if ch != ',' {
                    current.push(ch);
                }
            }
            names
        } else {
            BTreeSet::new()
        };
        let labels: BTreeSet<String> = labels
            .into_iter()
            .filter(|l| l != "job" && l != "instance" && l != "quantile")
            .collect();
        let base = ["_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| out.contains_key(*b)))
            .unwrap_or(name);
        out.entry(base.to_string()).or_default().1.extend(labels);
    }
    out
}

/// The rows of a markdown table in `docs/collectors-redis.md` under `heading`: the first
/// backticked name of each row and the remaining cells.
fn doc_table(heading: &str) -> Vec<(String, Vec<String>)> {
    let doc = std::fs::read_to_string(common::repo().join("docs/collectors-redis.md"))
        .expect("read docs/collectors-redis.md");
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/collectors-redis.md has no {heading:?}"));
    let section = &doc[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            let name = cells[0].trim_matches('`').to_string();
            (name, cells[1..].to_vec())
        })
        .collect()
}

/// The intentional differences from redis_exporter 1.45: metric (or family) and what differs.
/// The table in docs/collectors-redis.md must list exactly these.
const DIFFERENCES: &[(&str, &str)] = &[
    ("redis_up", "help text"),
    ("redis_stream_group_lag", "vigil only"),
    ("redis_keys_scan_truncated", "vigil only"),
    ("bullmq_queue_jobs", "vigil only"),
    ("redis_latency_percentiles_usec", "not collected"),
    ("redis_latency_spike_last", "not collected"),
    ("redis_latency_spike_duration_seconds", "not collected"),
    ("redis_stream_group_consumer_idle_seconds", "not collected"),
    (
        "redis_stream_group_consumer_messages_pending",
        "not collected",
    ),
    ("redis_key_value", "not collected"),
    ("redis_key_value_as_string", "not collected"),
    (
        "redis_last_key_groups_scrape_duration_milliseconds",
        "not collected",
    ),
    ("redis_exporter_*", "replaced"),
    ("redis_target_scrape_request_errors_total", "replaced"),
    ("redis_connections_received_total", "semantics"),
    ("redis_master_link_up", "not collected"),
    ("redis_slave_repl_offset", "not collected"),
    ("redis_slave_info", "not collected"),
];

#[test]
fn names_types_and_labels_match_redis_exporter() {
    let url = redis_url();
    let exporter = common::service("VIGIL_TEST_REDIS_EXPORTER", "prometheus-redis-exporter");
    let p = prefix("compat");
    let db = 7;
    let mut c = client(&url, db);
    let (list, stream) = (format!("{p}:list"), format!("{p}:stream"));
    run(&mut c, &["RPUSH", &list, "a", "b"]);
    run(&mut c, &["XADD", &stream, "*", "f", "v"]);
    run(&mut c, &["XGROUP", "CREATE", &stream, "g", "0"]);
    run(
        &mut c,
        &["XREADGROUP", "GROUP", "g", "c1", "STREAMS", &stream, ">"],
    );
    run(&mut c, &["SET", &format!("{p}:ttl"), "x", "EX", "600"]);
    // An error reply, so that errorstats (redis_errors_total) is not empty.
    let _: Result<redis::Value, _> = redis::cmd("LPUSH")
        .arg(format!("{p}:ttl"))
        .arg("x")
        .query(&mut c);
    // A slow-log entry, so that the slowlog metrics carry a value.
    let _: Result<redis::Value, _> = redis::cmd("DEBUG").arg("SLEEP").arg(0).query(&mut c);

    let port = common::free_port();
    let mut exp = Command::new(&exporter)
        .arg(format!("--redis.addr={}", url.trim_end_matches('/')))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--check-single-keys=db{db}={list},db{db}={p}:missing"
        ))
        .arg(format!("--check-keys=db{db}={p}:*"))
        .arg(format!("--check-single-streams=db{db}={stream}"))
        .arg(format!("--count-keys=db{db}={p}:*"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis_exporter");
    let exp_text = eventually(WAIT, "redis_exporter metrics", || {
        let (status, body) = common::http_get(&format!("http://127.0.0.1:{port}/metrics"));
        (status == 200 && body.contains("redis_up 1")).then_some(body)
    });
    let _ = exp.kill();
    let _ = exp.wait();

    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "  - name: compat\n    type: redis\n    interval: 1s\n    timeout: 1s\n    url_env: VIGIL_RT_URL\n    keys:\n      - {{db: {db}, key: \"{list}\"}}\n      - {{db: {db}, key: \"{p}:missing\"}}\n      - {{db: {db}, pattern: \"{p}:*\"}}\n    bullmq: [q]\n"
    );
    let d = daemon(dir.path(), &yaml, &[("VIGIL_RT_URL", &url)]);
    let ours = eventually(WAIT, "a full collection", || {
        let text = metrics(&d);
        text.contains("redis_stream_group_messages_pending{")
            .then_some(text)
    });
    cleanup(&url, db, &p);

    let theirs = families(&exp_text);
    let ours: BTreeMap<String, (String, BTreeSet<String>)> = families(&ours)
        .into_iter()
        .filter(|(n, _)| n.starts_with("redis_") || n.starts_with("bullmq_"))
        .collect();
    let differences: BTreeMap<&str, &str> = DIFFERENCES.iter().copied().collect();

    // 1. Every metric vigil writes is the exporter's (same type and label names), or a
    //    documented difference.
    let mut problems = Vec::new();
    for (name, (kind, labels)) in &ours {
        match theirs.get(name) {
            Some((k, l)) if k == kind && l == labels => {}
            Some((k, l)) if !differences.contains_key(name.as_str()) => problems.push(format!(
                "{name}: vigil {kind} {labels:?}, exporter {k} {l:?}"
            )),
            None if !differences.contains_key(name.as_str()) => {
                problems.push(format!("{name}: not in the exporter's output"))
            }
            _ => {}
        }
    }
    // 2. Every metric the docs list as compatible is in both outputs with the docs' type
    //    and labels ("when present" ones only when the exporter wrote them).
    let listed = doc_table("## Metrics");
    assert!(
        listed.len() > 40,
        "the metrics table of the docs is too short"
    );
    for (name, cells) in &listed {
        let (kind, labels, compat) = (&cells[0], &cells[1], cells[2].as_str());
        let labels: BTreeSet<String> = labels
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_string())
            .filter(|l| !l.is_empty() && l != "none" && l != "-")
            .collect();
        let present = theirs.contains_key(name);
        let required = compat == "yes";
        if !(compat == "yes" || compat == "yes, when present") {
            assert!(
                differences.contains_key(name.as_str()),
                "{name} is listed as {compat:?} but is not in DIFFERENCES"
            );
            continue;
        }
        if !present {
            if required {
                problems.push(format!(
                    "{name} (docs: compatible) not in the exporter's output"
                ));
            }
            continue;
        }
        let (k, l) = &theirs[name];
        if k != kind || *l != labels {
            problems.push(format!(
                "{name}: docs {kind} {labels:?}, exporter {k} {l:?}"
            ));
        }
        if required && !ours.contains_key(name) {
            problems.push(format!("{name} (docs: compatible) not written by vigil"));
        }
    }
    // Everything vigil wrote is in the docs' table.
    for name in ours.keys() {
        if !listed.iter().any(|(n, _)| n == name) {
            problems.push(format!(
                "{name} is written by vigil but not in the docs' metrics table"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "compatibility problems:\n{}",
        problems.join("\n")
    );

    // 3. The docs' table of intentional differences is this test's table.
    let documented: BTreeMap<String, String> = doc_table("## Intentional differences")
        .into_iter()
        .map(|(n, cells)| (n, cells[0].clone()))
        .collect();
    let expected: BTreeMap<String, String> = DIFFERENCES
        .iter()
        .map(|(n, k)| (n.to_string(), k.to_string()))
        .collect();
    assert_eq!(
        documented, expected,
        "docs/collectors-redis.md differences table"
    );
}

/// Runs openssl with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (needed to make test certificates)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=vigil-test-ca"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext");
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let ext_file = format!("{name}.ext");
        let mut req = vec![
            "req",
            "-subj",
            "/CN=vigil-test",
            "-keyout",
            &key,
            "-out",
            &csr,
        ];
        req.extend(ec);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &ext_file,
            ],
        );
    }
}

#[test]
fn tls_with_ca_file_and_client_certificates() {
    let certs = tempfile::tempdir().expect("tempdir");
    make_certs(certs.path());
    let c = |f: &str| certs.path().join(f).display().to_string();
    let server = PrivateRedis::start_with(
        true,
        &[
            "--tls-cert-file",
            &c("server.pem"),
            "--tls-key-file",
            &c("server.key"),
            "--tls-ca-cert-file",
            &c("ca.pem"),
            "--tls-auth-clients",
            "yes",
        ],
    );
    let port = server.port;
    let tls_url = format!("rediss://127.0.0.1:{port}/");
    let dir = tempfile::tempdir().expect("tempdir");
    let common =
        "type: redis, interval: 1s, timeout: 1s, connect_timeout: 900ms, url_env: VIGIL_RT_TLS";
    let yaml = format!(
        "  - {{name: mtls, {common}, ca_file: {ca}, cert_file: {cert}, key_file: {key}}}\n  - {{name: insecure, {common}, insecure_skip_verify: true, cert_file: {cert}, key_file: {key}}}\n  - {{name: nocert, {common}, ca_file: {ca}}}\n  - {{name: unknownca, {common}, cert_file: {cert}, key_file: {key}}}\n",
        ca = c("ca.pem"),
        cert = c("client.pem"),
        key = c("client.key"),
    );
    let d = daemon(dir.path(), &yaml, &[("VIGIL_RT_TLS", &tls_url)]);
    wait_value(&d, "redis_up{instance=\"mtls\",job=\"redis\"}", 1.0);
    wait_value(&d, "redis_up{instance=\"insecure\",job=\"redis\"}", 1.0);
    wait_value(&d, "redis_up{instance=\"nocert\",job=\"redis\"}", 0.0);
    wait_value(&d, "redis_up{instance=\"unknownca\",job=\"redis\"}", 0.0);
    let text = metrics(&d);
    assert!(
        metric_value(
            &text,
            "redis_connected_clients{instance=\"mtls\",job=\"redis\"}"
        )
        .is_some(),
        "{text}"
    );
    let log = eventually(WAIT, "the TLS errors in the log", || {
        let log = d.log_text();
        (log.contains("redis collector unknownca:") && log.contains("redis collector nocert:"))
            .then_some(log)
    });
    let unknown = log
        .lines()
        .find(|l| l.contains("redis collector unknownca:"))
        .unwrap_or_default();
    assert!(
        unknown.contains(&format!("TLS with rediss://127.0.0.1:{port}/0 failed"))
            && unknown.contains("UnknownIssuer"),
        "{unknown}"
    );
    let nocert = log
        .lines()
        .find(|l| l.contains("redis collector nocert:"))
        .unwrap_or_default();
    assert!(nocert.contains("CertificateRequired"), "{nocert}");
    drop(server);
}
