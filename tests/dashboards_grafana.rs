//! `vigil dashboards push` and the `grafana:` sync of `vigil run` against a local HTTP server
//! that behaves as Grafana's documented HTTP API does (a real Grafana cannot be installed on
//! these machines; docs/dashboards.md):
//! - `Authorization: Bearer <service-account token>`; an unknown token is 401, a Viewer's 403;
//! - `POST /api/folders {uid, title}`: 200, 409 when the uid exists, 400 on a bad uid;
//! - `POST /api/dashboards/db {dashboard, folderUid, message, overwrite}`: uids of at most 40
//!   `[A-Za-z0-9_-]` (400), a missing folder (400), a file-provisioned dashboard (400 "Cannot
//!   save provisioned dashboard"), another dashboard with the same title in the folder (412
//!   name-exists), a stale version without `overwrite` (412 version-mismatch); success returns
//!   `{id, uid, url, status, version, slug}` with the version incremented.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

const TOKEN: &str = "glsa_editor_0123456789abcdef";
const VIEWER: &str = "glsa_viewer_0123456789abcdef";

#[derive(Debug, Clone)]
struct Stored {
    version: i64,
    title: String,
    folder: String,
    provisioned: bool,
    model: Value,
    message: String,
}

#[derive(Default)]
struct Grafana {
    folders: BTreeMap<String, String>,
    dashboards: BTreeMap<String, Stored>,
    /// Answer this many requests with 503 first.
    fail_next: usize,
    /// (method path, status) of every request.
    log: Vec<(String, u16)>,
}

type Shared = Arc<Mutex<Grafana>>;

fn uid_error(uid: &str) -> Option<&'static str> {
    if uid.len() > 40 {
        Some("uid too long, max 40 characters")
    } else if !uid
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Some("uid contains illegal characters")
    } else {
        None
    }
}

fn answer(g: &mut Grafana, path: &str, status: StatusCode, body: Value) -> (StatusCode, String) {
    g.log.push((format!("POST {path}"), status.as_u16()));
    (status, body.to_string())
}

/// Auth and injected failures common to every route.
fn gate(g: &mut Grafana, path: &str, headers: &HeaderMap) -> Option<(StatusCode, String)> {
    if g.fail_next > 0 {
        g.fail_next -= 1;
        return Some(answer(
            g,
            path,
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"message": "Service unavailable"}),
        ));
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match auth.strip_prefix("Bearer ") {
        Some(TOKEN) => None,
        Some(VIEWER) => Some(answer(
            g,
            path,
            StatusCode::FORBIDDEN,
            json!({"message": "Access denied"}),
        )),
        _ => Some(answer(
            g,
            path,
            StatusCode::UNAUTHORIZED,
            json!({"message": "invalid API key"}),
        )),
    }
}

async fn folders(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let mut g = s.lock().expect("lock");
    let path = "/api/folders";
    if let Some(r) = gate(&mut g, path, &headers) {
        return r;
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return answer(
            &mut g,
            path,
            StatusCode::BAD_REQUEST,
            json!({"message": "bad request data"}),
        );
    };
    let uid = v["uid"].as_str().unwrap_or("").to_string();
    let title = v["title"].as_str().unwrap_or("").to_string();
    if title.is_empty() {
        return answer(
            &mut g,
            path,
            StatusCode::BAD_REQUEST,
            json!({"message": "folder title cannot be empty"}),
        );
    }
    if let Some(e) = uid_error(&uid) {
        return answer(&mut g, path, StatusCode::BAD_REQUEST, json!({"message": e}));
    }
    if g.folders.contains_key(&uid) {
        return answer(
            &mut g,
            path,
            StatusCode::CONFLICT,
            json!({"message": "a folder with the same uid already exists"}),
        );
    }
    g.folders.insert(uid.clone(), title.clone());
    let id = g.folders.len();
    answer(
        &mut g,
        path,
        StatusCode::OK,
        json!({"id": id, "uid": uid, "title": title, "url": format!("/dashboards/f/{uid}/")}),
    )
}

async fn dashboards_db(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    let mut g = s.lock().expect("lock");
    let path = "/api/dashboards/db";
    if let Some(r) = gate(&mut g, path, &headers) {
        return r;
    }
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return answer(
            &mut g,
            path,
            StatusCode::BAD_REQUEST,
            json!({"message": "bad request data"}),
        );
    };
    let model = v["dashboard"].clone();
    let uid = model["uid"].as_str().unwrap_or("").to_string();
    let title = model["title"].as_str().unwrap_or("").to_string();
    let folder = v["folderUid"].as_str().unwrap_or("").to_string();
    let overwrite = v["overwrite"].as_bool().unwrap_or(false);
    if title.is_empty() {
        return answer(
            &mut g,
            path,
            StatusCode::BAD_REQUEST,
            json!({"message": "Dashboard title cannot be empty"}),
        );
    }
    if let Some(e) = uid_error(&uid) {
        return answer(&mut g, path, StatusCode::BAD_REQUEST, json!({"message": e}));
    }
    if !folder.is_empty() && !g.folders.contains_key(&folder) {
        return answer(
            &mut g,
            path,
            StatusCode::BAD_REQUEST,
            json!({"message": "folder not found"}),
        );
    }
    if !model["id"].is_null() && !g.dashboards.contains_key(&uid) {
        return answer(
            &mut g,
            path,
            StatusCode::NOT_FOUND,
            json!({"message": "Dashboard not found"}),
        );
    }
    if g.dashboards
        .iter()
        .any(|(u, d)| u != &uid && d.folder == folder && d.title == title)
    {
        return answer(
            &mut g,
            path,
            StatusCode::PRECONDITION_FAILED,
            json!({"status": "name-exists", "message": "A dashboard with the same name in the folder already exists"}),
        );
    }
    let version = match g.dashboards.get(&uid) {
        Some(d) if d.provisioned => {
            return answer(
                &mut g,
                path,
                StatusCode::BAD_REQUEST,
                json!({"message": "Cannot save provisioned dashboard"}),
            );
        }
        Some(d) if !overwrite && model["version"].as_i64() != Some(d.version) => {
            return answer(
                &mut g,
                path,
                StatusCode::PRECONDITION_FAILED,
                json!({"status": "version-mismatch", "message": "The dashboard has been changed by someone else"}),
            );
        }
        Some(d) => d.version + 1,
        None => 1,
    };
    g.dashboards.insert(
        uid.clone(),
        Stored {
            version,
            title: title.clone(),
            folder,
            provisioned: false,
            model,
            message: v["message"].as_str().unwrap_or("").to_string(),
        },
    );
    let slug = title
        .to_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    let id = g.dashboards.len();
    answer(
        &mut g,
        path,
        StatusCode::OK,
        json!({"id": id, "uid": uid, "url": format!("/d/{uid}/{slug}"), "status": "success", "version": version, "slug": slug}),
    )
}

/// Starts the fake Grafana on its own runtime; returns its base URL.
fn start(state: Shared) -> String {
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let app = Router::new()
                .route("/grafana/api/folders", post(folders))
                .route("/grafana/api/dashboards/db", post(dashboards_db))
                .with_state(state);
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send addr");
            axum::serve(l, app).await.expect("serve");
        });
    });
    // A sub-path, as behind a reverse proxy: the client must keep it.
    format!("http://{}/grafana", rx.recv().expect("addr"))
}

fn config(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let rules = common::repo().join("rules/demo.yaml");
    common::write_config(
        dir,
        &format!(
            "rules: [{}]\ngrafana:\n  url: {url}\n  token_env: DASH_GRAFANA_TOKEN\n  folder_uid: vigil\n  folder: Vigil\n  max_backoff: 2s\n{extra}",
            rules.display()
        ),
    )
}

fn push(config: &Path, token: &str) -> (bool, String, String) {
    let o = Command::new(common::vigil_bin())
        .args(["dashboards", "push", "--config"])
        .arg(config)
        .env("DASH_GRAFANA_TOKEN", token)
        .output()
        .expect("run vigil dashboards push");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The dashboards `vigil dashboards generate` writes for `config`, by uid.
fn generated(config: &Path, dir: &Path) -> BTreeMap<String, Value> {
    let out = dir.join("generated");
    let o = Command::new(common::vigil_bin())
        .args(["dashboards", "generate", "--config"])
        .arg(config)
        .arg("--out")
        .arg(&out)
        .env("DASH_GRAFANA_TOKEN", TOKEN)
        .output()
        .expect("generate");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut map = BTreeMap::new();
    for sub in ["slo", "collectors", "agent"] {
        for e in std::fs::read_dir(out.join(sub)).expect("read dir") {
            let v: Value = serde_json::from_str(
                &std::fs::read_to_string(e.expect("entry").path()).expect("read"),
            )
            .expect("json");
            map.insert(v["uid"].as_str().expect("uid").to_string(), v);
        }
    }
    map
}

#[test]
fn push_creates_the_folder_and_overwrites_every_dashboard() {
    let state: Shared = Arc::default();
    let url = start(state.clone());
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &url, "");
    let want = generated(&cfg, tmp.path());
    assert_eq!(want.len(), 8);

    let (ok, stdout, stderr) = push(&cfg, TOKEN);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("pushed 8 dashboards to {url} (folder vigil)")),
        "{stdout}"
    );
    {
        let g = state.lock().expect("lock");
        assert_eq!(g.folders.get("vigil").map(String::as_str), Some("Vigil"));
        assert_eq!(g.dashboards.len(), 8);
        for (uid, model) in &want {
            let d = &g.dashboards[uid];
            assert_eq!(d.folder, "vigil");
            assert_eq!(d.version, 1);
            assert_eq!(
                d.message,
                format!(
                    "Provisioned by Vigil {} (vigil dashboards)",
                    env!("CARGO_PKG_VERSION")
                )
            );
            // Exactly the generated JSON, with the instance-specific id cleared.
            let mut sent = d.model.clone();
            assert!(sent["id"].is_null());
            sent.as_object_mut().expect("object").remove("id");
            assert_eq!(&sent, model, "{uid}");
        }
    }

    // Someone edits a dashboard in Grafana (its version moves on). Without overwrite Grafana
    // refuses the stale version; Vigil pushes with overwrite, and the folder's 409 is fine.
    {
        let mut g = state.lock().expect("lock");
        g.dashboards.get_mut("vigil-agent").expect("agent").version = 7;
    }
    let client = reqwest::blocking::Client::new();
    let mut stale =
        json!({"dashboard": want["vigil-agent"].clone(), "folderUid": "vigil", "overwrite": false});
    stale["dashboard"]["version"] = json!(1);
    let r = client
        .post(format!("{url}/api/dashboards/db"))
        .bearer_auth(TOKEN)
        .json(&stale)
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 412);
    assert!(r.text().expect("body").contains("version-mismatch"));

    let (ok, stdout, stderr) = push(&cfg, TOKEN);
    assert!(ok, "{stdout}{stderr}");
    let g = state.lock().expect("lock");
    assert_eq!(g.dashboards["vigil-agent"].version, 8);
    assert_eq!(g.dashboards["vigil-slo-overview"].version, 2);
    assert!(
        g.log
            .iter()
            .any(|(p, s)| p == "POST /api/folders" && *s == 409)
    );
    assert!(
        stdout.contains("vigil-agent version 8 /d/vigil-agent/"),
        "{stdout}"
    );
}

#[test]
fn push_explains_grafanas_refusals_without_showing_the_token() {
    let state: Shared = Arc::default();
    let url = start(state.clone());
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &url, "");

    let (ok, _, stderr) = push(&cfg, "glsa_wrong_token_value");
    assert!(!ok);
    assert!(stderr.contains("HTTP 401"), "{stderr}");
    assert!(stderr.contains("the token was not accepted"), "{stderr}");
    assert!(
        !stderr.contains("glsa_wrong_token_value"),
        "token leaked: {stderr}"
    );

    let (ok, _, stderr) = push(&cfg, VIEWER);
    assert!(!ok);
    assert!(
        stderr.contains("HTTP 403") && stderr.contains("Editor role"),
        "{stderr}"
    );
    assert!(!stderr.contains(VIEWER), "token leaked: {stderr}");

    // The agent dashboard is provisioned from files in this Grafana.
    {
        let mut g = state.lock().expect("lock");
        g.folders.insert("vigil".into(), "Vigil".into());
        g.dashboards.insert(
            "vigil-agent".into(),
            Stored {
                version: 3,
                title: "Vigil / Agent".into(),
                folder: "vigil".into(),
                provisioned: true,
                model: json!({}),
                message: String::new(),
            },
        );
    }
    let (ok, stdout, stderr) = push(&cfg, TOKEN);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("HTTP 400") && stderr.contains("Cannot save provisioned dashboard"),
        "{stderr}"
    );
    assert!(stderr.contains("file-provisioned"), "{stderr}");
    assert!(
        stderr.contains("vigil-agent"),
        "names the dashboard: {stderr}"
    );

    // Another dashboard in the folder already has the overview's title.
    {
        let mut g = state.lock().expect("lock");
        g.dashboards.remove("vigil-agent");
        g.dashboards.insert(
            "hand-made".into(),
            Stored {
                version: 1,
                title: "Vigil / SLO overview".into(),
                folder: "vigil".into(),
                provisioned: false,
                model: json!({}),
                message: String::new(),
            },
        );
    }
    let (ok, _, stderr) = push(&cfg, TOKEN);
    assert!(!ok);
    assert!(
        stderr.contains("HTTP 412") && stderr.contains("same title"),
        "{stderr}"
    );

    // A folder uid Grafana refuses is caught by the config check before any request.
    let bad = config(tmp.path(), &url, "");
    let text = std::fs::read_to_string(&bad)
        .expect("read")
        .replace("folder_uid: vigil", "folder_uid: vigil/slos");
    std::fs::write(&bad, text).expect("write");
    let before = state.lock().expect("lock").log.len();
    let (ok, _, stderr) = push(&bad, TOKEN);
    assert!(!ok);
    assert!(
        stderr.contains("grafana.folder_uid") && stderr.contains("'/'"),
        "{stderr}"
    );
    assert_eq!(state.lock().expect("lock").log.len(), before);
}

#[test]
fn push_retries_when_grafana_is_unavailable() {
    let state: Shared = Arc::default();
    state.lock().expect("lock").fail_next = 2;
    let url = start(state.clone());
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &url, "");
    // The token from a file this time (one trailing newline ignored), relative to the config.
    std::fs::write(tmp.path().join("grafana-token"), format!("{TOKEN}\n")).expect("token");
    let text = std::fs::read_to_string(&cfg)
        .expect("read")
        .replace("token_env: DASH_GRAFANA_TOKEN", "token_file: grafana-token");
    std::fs::write(&cfg, text).expect("write");
    let (ok, stdout, stderr) = push(&cfg, "not-this-one");
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stderr.matches("HTTP 503").count(), 2, "{stderr}");
    assert_eq!(state.lock().expect("lock").dashboards.len(), 8);
}

fn evaluation_rounds(d: &common::Daemon) -> f64 {
    common::metric_value(&d.get("/metrics").1, "vigil_evaluation_rounds_total").unwrap_or(0.0)
}

#[test]
fn daemon_syncs_at_start_and_after_reload_with_backoff() {
    let state: Shared = Arc::default();
    state.lock().expect("lock").fail_next = 3;
    let url = start(state.clone());
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &url, "");
    let mut d = common::Daemon::start_with_env(&cfg, &[("DASH_GRAFANA_TOKEN", TOKEN)]);
    d.wait_for_log("grafana: dashboards pushed", Duration::from_secs(60));
    let log = d.log_text();
    assert_eq!(
        log.matches("grafana: push failed; retrying").count(),
        3,
        "{log}"
    );
    assert!(!log.contains(TOKEN), "token in the log");
    assert_eq!(state.lock().expect("lock").dashboards.len(), 8);
    assert!(
        state
            .lock()
            .expect("lock")
            .dashboards
            .values()
            .all(|x| x.version == 1)
    );

    // A reload pushes again (new versions), with the new folder title for a new folder.
    let text = std::fs::read_to_string(&cfg).expect("read").replace(
        "folder_uid: vigil\n  folder: Vigil",
        "folder_uid: vigil-2\n  folder: Vigil two",
    );
    std::fs::write(&cfg, text).expect("write");
    d.signal("HUP");
    common::eventually(Duration::from_secs(30), "second push", || {
        let g = state.lock().expect("lock");
        (g.dashboards
            .values()
            .filter(|x| x.version == 2 && x.folder == "vigil-2")
            .count()
            == 8)
            .then_some(())
    });
    assert_eq!(
        state
            .lock()
            .expect("lock")
            .folders
            .get("vigil-2")
            .map(String::as_str),
        Some("Vigil two")
    );
}

#[test]
fn an_unreachable_grafana_never_blocks_evaluation() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &format!("http://127.0.0.1:{port}"), "");
    let mut d = common::Daemon::start_with_env(&cfg, &[("DASH_GRAFANA_TOKEN", TOKEN)]);
    d.wait_for_log("grafana: push failed; retrying", Duration::from_secs(30));
    let first = evaluation_rounds(&d);
    common::eventually(Duration::from_secs(30), "evaluation rounds go on", || {
        (evaluation_rounds(&d) >= first + 3.0).then_some(())
    });
    let (code, _) = d.get("/readyz");
    assert_eq!(code, 200);
}
