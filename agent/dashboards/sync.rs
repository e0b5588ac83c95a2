//! The background sync to Grafana (`grafana.sync: true`): the daemon starts it with the loaded
//! config and calls [`GrafanaSync::apply_config`] after each successful reload. Each config
//! generates the dashboards and pushes them; failures that may pass (network, 429, 5xx) are
//! retried with exponential backoff from 1s up to `grafana.max_backoff`, operator errors (400,
//! 401, 403, 412) are logged at ERROR and wait for the next reload. It runs on its own task and
//! never blocks scraping or evaluation; a newer config replaces a push in progress.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::config::GrafanaConfig;
use super::grafana::{Client, GrafanaError, message};
use super::{Dashboard, generate};
use crate::config::Config;

type Job = Option<(GrafanaConfig, Vec<Dashboard>)>;

/// Background sync to Grafana when `grafana:` is configured: at start and after each reload;
/// retries with backoff; never blocks evaluation.
#[derive(Clone)]
pub struct GrafanaSync {
    tx: watch::Sender<Job>,
}

fn job(config: &Config) -> Job {
    let g = config.grafana.as_ref()?;
    if !g.sync {
        return None;
    }
    Some((g.clone(), generate(config)))
}

impl GrafanaSync {
    /// Starts the sync task (None when `grafana:` is absent). With `sync: false` the task
    /// waits for a reload that turns it on. Must be called inside a tokio runtime.
    pub fn start(config: &Config, cancel: CancellationToken) -> Option<Self> {
        let (keep, leader) = watch::channel(true);
        let sync = Self::start_with_leader(config, cancel.clone(), leader)?;
        tokio::spawn(async move {
            cancel.cancelled().await;
            drop(keep);
        });
        Some(sync)
    }

    /// Like [`GrafanaSync::start`], pushing only while `leader` is true
    /// (`agent.leader_election`): one replica provisions Grafana. A replica that becomes the
    /// leader pushes the current dashboards; one that stops leading abandons a push.
    pub fn start_with_leader(
        config: &Config,
        cancel: CancellationToken,
        leader: watch::Receiver<bool>,
    ) -> Option<Self> {
        config.grafana.as_ref()?;
        let (tx, rx) = watch::channel(job(config));
        tokio::spawn(run(rx, cancel, leader));
        Some(Self { tx })
    }

    /// Re-syncs after a reload (a `sync: false` config stops pushing).
    pub fn apply_config(&self, config: &Config) {
        self.tx.send_replace(job(config));
    }
}

async fn run(
    mut rx: watch::Receiver<Job>,
    cancel: CancellationToken,
    mut leader: watch::Receiver<bool>,
) {
    loop {
        // Followers wait; a reload while following is pushed once this replica leads.
        while !*leader.borrow_and_update() {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = leader.changed() => if changed.is_err() { return; },
            }
        }
        let current = rx.borrow_and_update().clone();
        if let Some((cfg, dashboards)) = current {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = push_with_retries(&cfg, &dashboards) => {}
                changed = rx.changed() => {
                    if changed.is_err() { return; }
                    info!("grafana: configuration changed during a push; pushing the new dashboards");
                    continue;
                }
                _ = async {
                    if leader.wait_for(|l| !*l).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => {
                    info!("grafana: no longer the leader; the new leader pushes the dashboards");
                    continue;
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = rx.changed() => if changed.is_err() { return; },
            // Lost and regained leadership: push again (another replica may have pushed an
            // older configuration meanwhile).
            _ = async {
                let lost = leader.wait_for(|l| !*l).await.is_ok();
                if !lost || leader.wait_for(|l| *l).await.is_err() {
                    std::future::pending::<()>().await;
                }
            } => {}
        }
    }
}

/// Pushes until it succeeds or fails for a reason retrying cannot fix.
async fn push_with_retries(cfg: &GrafanaConfig, dashboards: &[Dashboard]) {
    let mut backoff = Duration::from_secs(1);
    let mut attempt = 1u32;
    loop {
        match push_once(cfg, dashboards).await {
            Ok(n) => {
                info!(grafana = %cfg.url, folder = %cfg.folder_uid, dashboards = n, attempt, "grafana: dashboards pushed");
                return;
            }
            Err(e) if e.is_retryable() => {
                warn!(error = %e, attempt, retry_in = ?backoff, "grafana: push failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(cfg.max_backoff);
                attempt += 1;
            }
            Err(e) => {
                error!(error = %e, "grafana: push failed; fix it and reload the configuration");
                return;
            }
        }
    }
}

async fn push_once(cfg: &GrafanaConfig, dashboards: &[Dashboard]) -> Result<usize, GrafanaError> {
    let client = Client::new(cfg)?;
    Ok(client.push_all(cfg, dashboards, &message()).await?.len())
}
