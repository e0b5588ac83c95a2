//! Grafana dashboards generated from the SLOs and collectors (`vigil dashboards generate`), and
//! provisioned by files (`docker/grafana/provisioning`) or through Grafana's HTTP API
//! (`vigil dashboards push`, and the `grafana:` sync at start and after each reload).
//! See docs/dashboards.md.
//!
//! Layout: `model.rs` (dashboard skeleton, panels, uids, deterministic JSON), `slo.rs` (overview
//! and one detail dashboard per SLO), `collectors.rs` (Postgres, Redis, Kafka), `agent.rs` (the
//! agent's self-metrics), `grafana.rs` (HTTP API client), `sync.rs` (background sync),
//! `config.rs` (`grafana:`). Reads the loaded [`Config`] (its SLOs); nothing reads back from here.

pub mod agent;
pub mod collectors;
pub mod config;
pub mod grafana;
pub mod model;
pub mod slo;
pub mod sync;

use std::path::Path;

pub use config::GrafanaConfig;
pub use sync::GrafanaSync;

use crate::config::Config;

/// One generated dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    /// Path relative to the output directory (e.g. `slo/demo-availability.json`); the directory
    /// becomes the Grafana folder under file provisioning (`foldersFromFilesStructure`).
    pub path: String,
    /// Stable uid.
    pub uid: String,
    /// The JSON text (deterministic, sorted keys, trailing newline).
    pub json: String,
}

fn make(path: String, uid: &str, v: &serde_json::Value) -> Dashboard {
    Dashboard {
        path,
        uid: uid.to_string(),
        json: model::render(v),
    }
}

/// Every dashboard for `config`, in a stable order: the SLO overview and one per SLO (when
/// there are SLOs), Postgres, Redis, Kafka, and the agent.
pub fn generate(config: &Config) -> Vec<Dashboard> {
    let mut slos: Vec<&crate::slo::spec::Slo> = config.slos.iter().map(|s| s.as_ref()).collect();
    slos.sort_by(|a, b| {
        (a.service.as_str(), a.spec.name.as_str()).cmp(&(b.service.as_str(), b.spec.name.as_str()))
    });
    let mut out = Vec::new();
    if !slos.is_empty() {
        out.push(make(
            "slo/overview.json".into(),
            slo::OVERVIEW_UID,
            &slo::overview(&slos),
        ));
        for s in &slos {
            let uid = slo::detail_uid(s);
            out.push(make(
                format!("slo/{}.json", model::file_name(&[&s.service, &s.spec.name])),
                &uid,
                &slo::detail(s),
            ));
        }
    }
    out.push(make(
        "collectors/postgres.json".into(),
        "vigil-postgres",
        &collectors::postgres(),
    ));
    out.push(make(
        "collectors/redis.json".into(),
        "vigil-redis",
        &collectors::redis(),
    ));
    out.push(make(
        "collectors/kafka.json".into(),
        "vigil-kafka",
        &collectors::kafka(),
    ));
    out.push(make(
        "agent/vigil.json".into(),
        agent::UID,
        &agent::dashboard_json(),
    ));
    out
}

/// `vigil dashboards generate`: writes every dashboard under `out`; returns a summary line for
/// stdout, or an error message naming the file and what to do.
pub fn cli_generate(config: &Config, out: &Path) -> Result<String, String> {
    let dashboards = generate(config);
    let mut uids = std::collections::BTreeMap::new();
    for d in &dashboards {
        if let Some(other) = uids.insert(d.uid.clone(), d.path.clone()) {
            return Err(format!(
                "{} and {} would get the same uid {}; rename one of the SLOs",
                other, d.path, d.uid
            ));
        }
    }
    for d in &dashboards {
        let path = out.join(&d.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!(
                    "cannot create {}: {e}; check --out and its permissions",
                    dir.display()
                )
            })?;
        }
        std::fs::write(&path, &d.json).map_err(|e| {
            format!(
                "cannot write {}: {e}; check --out and its permissions",
                path.display()
            )
        })?;
    }
    Ok(format!(
        "wrote {} dashboards to {}",
        dashboards.len(),
        out.display()
    ))
}

/// `vigil dashboards push`: pushes every dashboard to the Grafana of `grafana:`; returns a summary
/// for stdout or an error message. Transient failures are retried three times.
pub async fn cli_push(config: &Config) -> Result<String, String> {
    let Some(cfg) = &config.grafana else {
        return Err(
            "no grafana: section in the configuration; add grafana.url and grafana.token_env (see docs/dashboards.md)"
                .into(),
        );
    };
    let dashboards = generate(config);
    let client = grafana::Client::new(cfg).map_err(|e| e.to_string())?;
    let mut delay = std::time::Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match client.push_all(cfg, &dashboards, &grafana::message()).await {
            Ok(pushed) => {
                let mut lines = vec![format!(
                    "pushed {} dashboards to {} (folder {})",
                    pushed.len(),
                    cfg.url,
                    cfg.folder_uid
                )];
                for p in &pushed {
                    lines.push(format!("  {} version {} {}", p.uid, p.version, p.url));
                }
                return Ok(lines.join("\n"));
            }
            Err(e) if e.is_retryable() && attempt < 4 => {
                eprintln!("vigil: {e}; retrying in {}s", delay.as_secs());
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
