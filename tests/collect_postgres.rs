//! The `type: postgres` collector against the real PostgreSQL of `scripts/test-services.sh`
//! (superuser and pg_monitor-only user), a private server stopped and restarted mid-run, bad
//! connection settings, and the compatibility with the Debian postgres_exporter 0.11 running
//! against the same server. The metric list and the exporter-compatibility column come from
//! `docs/collectors-postgres.md`, so the documentation is what is tested.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, eventually, metric_value, service};

const WAIT: Duration = Duration::from_secs(60);

// ---- exposition parsing -------------------------------------------------------------------

/// A sample's labels and value.
type Sample = (BTreeMap<String, String>, f64);

/// One parsed `/metrics` text: TYPE per family, samples per metric name.
#[derive(Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: HashMap<String, Vec<Sample>>,
}

fn parse(text: &str) -> Exposition {
    let mut e = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(n), Some(t)) = (it.next(), it.next()) {
                e.types.insert(n.to_string(), t.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, labels, rest) = match line.find('{') {
            Some(b) => {
                let (labels, end) = parse_labels(&line[b + 1..]);
                (&line[..b], labels, &line[b + 1 + end..])
            }
            None => {
                let sp = line.find(' ').expect("sample without value");
                (&line[..sp], BTreeMap::new(), &line[sp..])
            }
        };
        let value: f64 = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        e.samples
            .entry(name.to_string())
            .or_default()
            .push((labels, value));
    }
    e
}

/// Labels after `{`; returns them (empty values dropped: Prometheus treats them as absent)
/// and the offset just past `}`.
fn parse_labels(s: &str) -> (BTreeMap<String, String>, usize) {
    let mut labels = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while b[i] == b',' || b[i] == b' ' {
            i += 1;
        }
        if b[i] == b'}' {
            return (labels, i + 1);
        }
        let eq = i + s[i..].find('=').expect("=");
        let name = s[i..eq].to_string();
        i = eq + 2; // ="
        let mut value = String::new();
        while b[i] != b'"' {
            if b[i] == b'\\' {
                i += 1;
            }
            let c = s[i..].chars().next().expect("char");
            value.push(c);
            i += c.len_utf8();
        }
        i += 1;
        if !value.is_empty() {
            labels.insert(name, value);
        }
    }
}

fn label_names(e: &Exposition, name: &str) -> BTreeSet<String> {
    let skip = ["job", "instance"];
    e.samples
        .get(name)
        .map(|s| {
            s.iter()
                .flat_map(|(l, _)| l.keys().cloned())
                .filter(|k| !skip.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of `name` whose labels include all of `want`.
fn value(e: &Exposition, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    e.samples.get(name)?.iter().find_map(|(l, v)| {
        want.iter()
            .all(|(k, w)| l.get(*k).map(String::as_str) == Some(*w))
            .then_some(*v)
    })
}

// ---- the documentation --------------------------------------------------------------------

/// A row of the metrics table of docs/collectors-postgres.md.
#[derive(Debug)]
struct DocMetric {
    name: String,
    kind: String,
    labels: BTreeSet<String>,
    exporter: String,
    notes: String,
}

fn doc() -> String {
    std::fs::read_to_string(common::repo().join("docs/collectors-postgres.md"))
        .expect("docs/collectors-postgres.md")
}

fn doc_section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/collectors-postgres.md has no {heading:?}"));
    let rest = &doc[start + heading.len()..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_string())
        .collect()
}

fn doc_metrics() -> Vec<DocMetric> {
    let doc = doc();
    let rows: Vec<DocMetric> = doc_section(&doc, "## Metrics")
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let c = cells(l);
            DocMetric {
                name: c[0].trim_matches('`').to_string(),
                kind: c[1].clone(),
                labels: c[2]
                    .split(',')
                    .map(|s| s.trim().trim_matches('`').to_string())
                    .filter(|s| !s.is_empty() && s != "—")
                    .collect(),
                exporter: c[3].clone(),
                notes: c.get(4).cloned().unwrap_or_default(),
            }
        })
        .collect();
    assert!(rows.len() > 50, "the metrics table looks truncated");
    rows
}

/// Names (or `prefix_*`) listed in the "Intentional differences" table.
fn doc_differences() -> String {
    doc_section(&doc(), "## Intentional differences").to_string()
}

/// Whether the row applies to a server of major version `major` (notes like
/// `PostgreSQL 17+` or `PostgreSQL < 17`).
fn applies(row: &DocMetric, major: u32) -> bool {
    let n = &row.notes;
    if let Some(i) = n.find("PostgreSQL < ") {
        let v: u32 = n[i + 13..i + 15].parse().expect("version");
        return major < v;
    }
    if let Some(i) = n.find("PostgreSQL ") {
        if let Some(plus) = n[i + 11..].find('+') {
            if let Ok(v) = n[i + 11..i + 11 + plus].parse::<u32>() {
                return major >= v;
            }
        }
    }
    true
}

/// Family names of `e` that a doc row covers (`pg_settings_*` covers many).
fn covered(e: &Exposition, row: &DocMetric) -> Vec<String> {
    match row.name.strip_suffix('*') {
        Some(prefix) => e
            .types
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect(),
        None => e
            .types
            .contains_key(&row.name)
            .then(|| row.name.clone())
            .into_iter()
            .collect(),
    }
}

// ---- helpers ------------------------------------------------------------------------------

fn psql_bin() -> PathBuf {
    PathBuf::from(service("VIGIL_TEST_PG_BIN", "PostgreSQL binaries")).join("psql")
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(psql_bin())
        .args([url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A psql session that keeps a transaction open until dropped.
struct OpenTx(Child);

impl OpenTx {
    fn start(url: &str, sql: &str) -> OpenTx {
        let mut child = Command::new(psql_bin())
            .args([url, "-XAtq"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn psql");
        let stdin = child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "BEGIN; {sql}").expect("write to psql");
        stdin.flush().expect("flush");
        OpenTx(child)
    }
}

impl Drop for OpenTx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn collector_yaml(name: &str, env: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    type: postgres\n    interval: 1s\n    timeout: 1s\n    url_env: {env}\n{extra}"
    )
}

fn start(dir: &Path, collectors: &[String], env: &[(&str, &str)]) -> Daemon {
    let cfg = common::write_config(dir, &format!("collectors:\n{}", collectors.concat()));
    Daemon::start_with_env(&cfg, env)
}

fn up(d: &Daemon, instance: &str) -> Option<f64> {
    let (_, text) = d.get("/metrics");
    metric_value(
        &text,
        &format!("pg_up{{instance=\"{instance}\",job=\"postgres\"}}"),
    )
}

fn wait_up(d: &Daemon, instance: &str, want: f64) {
    eventually(
        WAIT,
        &format!("pg_up{{instance={instance}}} == {want}"),
        || (up(d, instance) == Some(want)).then_some(()),
    );
}

fn scrape(d: &Daemon) -> Exposition {
    let (status, text) = d.get("/metrics");
    assert_eq!(status, 200);
    parse(&text)
}

fn mine(e: &Exposition, name: &str, instance: &str, want: &[(&str, &str)]) -> Option<f64> {
    let mut w = want.to_vec();
    w.push(("instance", instance));
    value(e, name, &w)
}

fn server_major(url: &str) -> u32 {
    psql(url, "SHOW server_version_num")
        .parse::<u32>()
        .expect("server_version_num")
        / 10000
}

// ---- the collector against the shared server -----------------------------------------------

/// Every documented metric is there with the documented TYPE and labels, and the values follow
/// the load this test creates.
fn documented_metrics_follow_load(var: &str, instance: &str) {
    let url = service(var, "PostgreSQL");
    let admin = service("VIGIL_TEST_PG_URL", "PostgreSQL");
    let major = server_major(&admin);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(
        dir.path(),
        &[collector_yaml(
            instance,
            "PG_COLLECT_URL",
            "    per_table_stats: true\n    databases:\n      include: vigil\n",
        )],
        &[("PG_COLLECT_URL", &url)],
    );
    wait_up(&d, instance, 1.0);
    let table = format!(
        "collect_pg_{}_{}",
        instance.replace('-', "_"),
        std::process::id()
    );
    psql(
        &admin,
        &format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int)"),
    );
    psql(&admin, &format!("GRANT SELECT ON {table} TO PUBLIC"));

    // Wait for a collection that sees the new table, then check the whole list.
    let before = eventually(WAIT, "the new table in pg_stat_user_tables", || {
        let e = scrape(&d);
        mine(
            &e,
            "pg_stat_user_tables_n_tup_ins",
            instance,
            &[("relname", &table)],
        )
        .map(|_| e)
    });
    for row in doc_metrics() {
        if !applies(&row, major) {
            continue;
        }
        let names = covered(&before, &row);
        assert!(
            !names.is_empty(),
            "{} ({instance}) is missing from /metrics",
            row.name
        );
        for n in names {
            assert_eq!(before.types.get(&n), Some(&row.kind), "TYPE of {n}");
            if row.name != "pg_up" {
                assert_eq!(label_names(&before, &n), row.labels, "labels of {n}");
            }
        }
    }
    for (name, v) in &before.samples["pg_scrape_collector_success"] {
        if name.get("instance").map(String::as_str) == Some(instance) {
            assert_eq!(*v, 1.0, "sub-collector failed for {instance}: {name:?}");
        }
    }
    let db = [("datname", "vigil")];
    let commits0 =
        mine(&before, "pg_stat_database_xact_commit", instance, &db).expect("xact_commit");
    let ins0 = mine(&before, "pg_stat_database_tup_inserted", instance, &db).expect("tup_inserted");

    // Load: 20 committed inserts of 5 rows each; a transaction holding an exclusive lock.
    for _ in 0..20 {
        psql(
            &admin,
            &format!("INSERT INTO {table} SELECT generate_series(1, 5)"),
        );
    }
    let tx = OpenTx::start(
        &admin,
        &format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(0);"),
    );
    std::thread::sleep(Duration::from_millis(2500));
    let after = eventually(WAIT, "the load in the statistics", || {
        let e = scrape(&d);
        let locks = mine(
            &e,
            "pg_locks_count",
            instance,
            &[("datname", "vigil"), ("mode", "accessexclusivelock")],
        )?;
        let tx = mine(
            &e,
            "pg_stat_activity_max_tx_duration",
            instance,
            &[("datname", "vigil"), ("state", "idle in transaction")],
        )?;
        let commits = mine(&e, "pg_stat_database_xact_commit", instance, &db)?;
        let rows = mine(
            &e,
            "pg_stat_user_tables_n_tup_ins",
            instance,
            &[("relname", &table)],
        )?;
        (locks >= 1.0 && tx >= 1.0 && commits >= commits0 + 20.0 && rows >= 100.0).then_some(e)
    });
    let ins1 = mine(&after, "pg_stat_database_tup_inserted", instance, &db).expect("tup_inserted");
    assert!(ins1 >= ins0 + 100.0, "tup_inserted {ins0} -> {ins1}");
    let idle_tx = mine(
        &after,
        "pg_stat_activity_count",
        instance,
        &[("datname", "vigil"), ("state", "idle in transaction")],
    );
    assert!(
        idle_tx >= Some(1.0),
        "idle in transaction count {idle_tx:?}"
    );
    drop(tx);
    // Zero-filled series stay present once the transaction has ended.
    eventually(WAIT, "the lock to go away", || {
        let e = scrape(&d);
        let locks = mine(
            &e,
            "pg_locks_count",
            instance,
            &[("datname", "template1"), ("mode", "accessexclusivelock")],
        )?;
        let tx = mine(
            &e,
            "pg_stat_activity_max_tx_duration",
            instance,
            &[("datname", "vigil"), ("state", "idle in transaction")],
        )?;
        (locks == 0.0 && tx == 0.0).then_some(())
    });
    psql(&admin, &format!("DROP TABLE {table}"));
    let log = d.log_text();
    assert!(
        !log.contains("postgres sub-collector") && !log.contains("collection failed"),
        "unexpected warnings:\n{log}"
    );
}

#[test]
fn documented_metrics_follow_load_as_superuser() {
    documented_metrics_follow_load("VIGIL_TEST_PG_URL", "pg-super");
}

#[test]
fn documented_metrics_follow_load_as_pg_monitor() {
    documented_metrics_follow_load("VIGIL_TEST_PG_MONITOR_URL", "pg-monitor");
}

// ---- compatibility with the exporter --------------------------------------------------------

struct Exporter(Child);

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Debian postgres_exporter 0.11 against the same server, with its example queries.yaml
/// (the source of pg_postmaster_*, pg_replication_lag and pg_stat_user_tables_*).
fn exporter_metrics(url: &str) -> Exposition {
    let bin = service("VIGIL_TEST_PG_EXPORTER", "postgres_exporter");
    let port = common::free_port();
    let queries = "/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml";
    assert!(
        Path::new(queries).is_file(),
        "{queries} is missing (Debian package prometheus-postgres-exporter)"
    );
    let sep = if url.contains('?') { '&' } else { '?' };
    let _exporter = Exporter(
        Command::new(bin)
            .env("DATA_SOURCE_NAME", format!("{url}{sep}sslmode=disable"))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--extend.query-path={queries}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn postgres_exporter"),
    );
    let text = eventually(WAIT, "postgres_exporter /metrics with pg_up 1", || {
        let (status, text) = common::http_get(&format!("http://127.0.0.1:{port}/metrics"));
        (status == 200 && metric_value(&text, "pg_up") == Some(1.0)).then_some(text)
    });
    parse(&text)
}

#[test]
fn names_types_and_labels_match_postgres_exporter() {
    let url = service("VIGIL_TEST_PG_URL", "PostgreSQL");
    let major = server_major(&url);
    let theirs = exporter_metrics(&url);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(
        dir.path(),
        &[collector_yaml(
            "pg-compat",
            "PG_COLLECT_URL",
            "    per_table_stats: true\n",
        )],
        &[("PG_COLLECT_URL", &url)],
    );
    wait_up(&d, "pg-compat", 1.0);
    let ours = eventually(WAIT, "per-table stats", || {
        let e = scrape(&d);
        e.types
            .contains_key("pg_stat_user_tables_n_live_tup")
            .then_some(e)
    });
    let differences = doc_differences();
    let mut compatible = 0;
    for row in doc_metrics() {
        if !applies(&row, major) {
            continue;
        }
        let names = covered(&ours, &row);
        match row.exporter.as_str() {
            "same" | "queries.yaml" => {
                for n in names {
                    assert_eq!(
                        theirs.types.get(&n),
                        ours.types.get(&n),
                        "TYPE of {n} (documented as compatible)"
                    );
                    assert_eq!(
                        label_names(&theirs, &n),
                        label_names(&ours, &n),
                        "label names of {n} (documented as compatible)"
                    );
                    compatible += 1;
                }
            }
            _ => {
                let short = row.name.trim_end_matches('*');
                assert!(
                    differences.contains(short),
                    "{} is not compatible but the differences table does not mention it",
                    row.name
                );
            }
        }
    }
    assert!(
        compatible > 300,
        "only {compatible} compatible families checked"
    );
    // Every family we expose is documented, and every pg_ family of the exporter (the
    // defaults and the three queries.yaml entries we implement) is one we expose or a listed
    // difference.
    let docs = doc_metrics();
    for n in ours.types.keys().filter(|n| n.starts_with("pg_")) {
        assert!(
            docs.iter().any(|r| match r.name.strip_suffix('*') {
                Some(p) => n.starts_with(p),
                None => &r.name == n,
            }),
            "{n} is exposed but not in the metrics table of the docs"
        );
    }
    for n in theirs.types.keys().filter(|n| n.starts_with("pg_")) {
        if ours.types.contains_key(n) {
            continue;
        }
        let by_prefix = differences
            .split('`')
            .skip(1)
            .step_by(2)
            .filter_map(|t| t.strip_suffix('*'))
            .any(|p| n.starts_with(p));
        assert!(
            differences.contains(&format!("`{n}`")) || by_prefix,
            "the exporter has {n} but vigil does not, and the differences table does not say why"
        );
    }
    // Settings: the same values (they are server-wide and stable).
    let mut settings = 0;
    for n in theirs
        .types
        .keys()
        .filter(|n| n.starts_with("pg_settings_"))
    {
        let a = value(&theirs, n, &[]).expect("exporter value");
        let b = mine(&ours, n, "pg-compat", &[]).unwrap_or_else(|| panic!("{n} missing"));
        assert_eq!(a, b, "value of {n}");
        settings += 1;
    }
    assert!(settings > 100, "{settings} settings compared");
}

// ---- a private server: stop and start ------------------------------------------------------

/// A PostgreSQL cluster in a temporary directory, run by the `postgres` OS user.
struct PrivatePg {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePg {
    fn bin(name: &str) -> PathBuf {
        PathBuf::from(service("VIGIL_TEST_PG_BIN", "PostgreSQL binaries")).join(name)
    }

    fn as_postgres(args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("runuser");
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn init() -> PrivatePg {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("chown")
            .args(["postgres:", &dir.path().display().to_string()])
            .status()
            .expect("chown");
        assert!(ok.success(), "chown to postgres (the tests run as root)");
        let data = dir.path().join("data");
        Self::as_postgres(&[
            &Self::bin("initdb").display().to_string(),
            "-D",
            &data.display().to_string(),
            "-U",
            "vigil",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]);
        let pg = PrivatePg {
            dir,
            port: common::free_port(),
        };
        pg.start();
        pg
    }

    fn url(&self, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        Self::as_postgres(&[
            &Self::bin("pg_ctl").display().to_string(),
            "-D",
            &self.dir.path().join("data").display().to_string(),
            "-l",
            &self.dir.path().join("log").display().to_string(),
            "-o",
            &opts,
            "-w",
            "start",
        ]);
    }

    fn stop(&self) {
        Self::as_postgres(&[
            &Self::bin("pg_ctl").display().to_string(),
            "-D",
            &self.dir.path().join("data").display().to_string(),
            "-m",
            "fast",
            "-w",
            "stop",
        ]);
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Self::bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn private_server_down_and_up_again_and_a_missing_privilege() {
    let pg = PrivatePg::init();
    // A user that may not read pg_locks: only the locks sub-collector fails.
    psql(
        &pg.url("vigil"),
        "CREATE ROLE limited LOGIN; REVOKE SELECT ON pg_catalog.pg_locks FROM PUBLIC",
    );
    // per_table_stats visits every database, not only the one of the URL.
    psql(&pg.url("vigil"), "CREATE DATABASE other");
    let other = format!("postgres://vigil@127.0.0.1:{}/other", pg.port);
    psql(
        &other,
        "CREATE TABLE t_other (id int); INSERT INTO t_other VALUES (1), (2), (3)",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(
        dir.path(),
        &[
            collector_yaml("private", "PG_PRIVATE_URL", "    per_table_stats: true\n"),
            collector_yaml("limited", "PG_LIMITED_URL", ""),
        ],
        &[
            ("PG_PRIVATE_URL", &pg.url("vigil")),
            ("PG_LIMITED_URL", &pg.url("limited")),
        ],
    );
    wait_up(&d, "private", 1.0);
    wait_up(&d, "limited", 1.0);
    eventually(
        WAIT,
        "t_other of database other in pg_stat_user_tables",
        || {
            let e = scrape(&d);
            let want = [
                ("datname", "other"),
                ("relname", "t_other"),
                ("schemaname", "public"),
            ];
            (mine(&e, "pg_stat_user_tables_n_tup_ins", "private", &want)? >= 3.0).then_some(())
        },
    );
    let e = eventually(WAIT, "a few collections of the limited user", || {
        let e = scrape(&d);
        let n = d.log_text().matches("sub-collector disabled").count();
        (n >= 1
            && mine(
                &e,
                "pg_scrape_collector_success",
                "limited",
                &[("collector", "locks")],
            ) == Some(0.0))
        .then_some(e)
    });
    for sub in [
        "server",
        "database",
        "stat_database",
        "stat_activity",
        "settings",
        "bgwriter",
    ] {
        assert_eq!(
            mine(
                &e,
                "pg_scrape_collector_success",
                "limited",
                &[("collector", sub)]
            ),
            Some(1.0),
            "sub-collector {sub} of the limited user"
        );
    }
    assert!(mine(&e, "pg_locks_count", "limited", &[]).is_none());
    assert!(mine(&e, "pg_locks_count", "private", &[]).is_some());
    assert!(
        mine(
            &e,
            "pg_stat_database_xact_commit",
            "limited",
            &[("datname", "postgres")]
        )
        .is_some()
    );
    // Several rounds later there is still exactly one WARN about it.
    std::thread::sleep(Duration::from_secs(3));
    let log = d.log_text();
    let warns: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warns.len(), 1, "one WARN line expected:\n{log}");
    assert!(
        warns[0].contains("limited")
            && warns[0].contains("locks")
            && warns[0].contains("pg_monitor"),
        "{}",
        warns[0]
    );

    pg.stop();
    wait_up(&d, "private", 0.0);
    wait_up(&d, "limited", 0.0);
    let e = scrape(&d);
    assert!(
        mine(&e, "pg_stat_database_xact_commit", "private", &[]).is_none(),
        "no stale statistics while the server is down"
    );
    pg.start();
    wait_up(&d, "private", 1.0);
    wait_up(&d, "limited", 1.0);
    let e = scrape(&d);
    assert!(
        mine(
            &e,
            "pg_stat_database_xact_commit",
            "private",
            &[("datname", "postgres")]
        )
        .is_some()
    );
    assert!(d.log_text().contains("collector reached its server again"));
}

// ---- bad input ------------------------------------------------------------------------------

#[test]
fn bad_connection_settings_give_pg_up_0_and_a_clear_log() {
    let url = service("VIGIL_TEST_PG_URL", "PostgreSQL");
    let host_port = url
        .rsplit('@')
        .next()
        .expect("@")
        .split('/')
        .next()
        .expect("host");
    let wrong_pw = format!("postgres://vigil:Wr0ngPassw0rd@{host_port}/vigil");
    let refused = format!(
        "postgres://vigil:Refus3dPw@127.0.0.1:{}/vigil",
        common::free_port()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let d = start(
        dir.path(),
        &[
            collector_yaml("bad-password", "PG_BAD_PW", ""),
            collector_yaml("refused", "PG_REFUSED", ""),
            collector_yaml("needs-tls", "PG_GOOD", "    tls:\n      mode: require\n"),
            collector_yaml("good", "PG_GOOD", ""),
        ],
        &[
            ("PG_BAD_PW", &wrong_pw),
            ("PG_REFUSED", &refused),
            ("PG_GOOD", &url),
        ],
    );
    wait_up(&d, "good", 1.0);
    for (instance, what) in [
        ("bad-password", "password authentication failed"),
        ("refused", "Connection refused"),
        ("needs-tls", "TLS"),
    ] {
        wait_up(&d, instance, 0.0);
        let line = eventually(WAIT, &format!("the error of {instance} in the log"), || {
            d.log_lines()
                .into_iter()
                .find(|l| l.contains("collection failed") && l.contains(instance))
        });
        assert!(line.contains(what), "{instance}: {line}");
        assert!(
            line.contains("cannot connect to postgres://vigil:***@"),
            "{instance}: {line}"
        );
    }
    let log = d.log_text();
    for secret in ["Wr0ngPassw0rd", "Refus3dPw", ":vigil@"] {
        assert!(
            !log.contains(secret),
            "the log shows a password ({secret}):\n{log}"
        );
    }
    // The agent keeps serving and the good collector keeps collecting.
    let (status, text) = d.get("/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        metric_value(&text, "pg_up{instance=\"good\",job=\"postgres\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "vigil_collector_success{collector=\"refused\",type=\"postgres\"}"
        ),
        Some(0.0)
    );
}
