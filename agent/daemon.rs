//! `vigil run`: builds the managers from the configuration, runs them until SIGTERM/SIGINT, and
//! applies reloads (SIGHUP or a change of the config file) only when the whole new configuration
//! is valid. Shutdown is bounded by `agent.shutdown_grace_period`.
//!
//! Data flows one way: the demo (and later scrape/collectors) produce samples, the evaluation
//! round consumes them and writes the ledger, the HTTP API reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::alert::engine::AlertEngine;
use crate::api::metrics::{MetricsSource, MetricsWriter};
use crate::api::{self, AppState, Readiness};
use crate::collect::CollectorManager;
use crate::config::reload::{ReloadStatus, Watcher};
use crate::config::{Config, ConfigSource};
use crate::demo::Demo;
use crate::leader::LeaderElector;
use crate::notify::dispatch::Dispatcher;
use crate::notify::outbox::Outbox;
use crate::scrape::ScrapeManager;
use crate::slo::SloManager;
use crate::store::ledger::{Ledger, LedgerError};
use crate::store::series::SeriesStore;

/// Readiness condition: the ledger is open and migrated.
pub const READY_LEDGER: &str = "ledger";

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A listener could not be bound.
    #[error(
        "cannot listen on {addr} for {what}: {source}; is another process using the port? change {key}"
    )]
    Bind {
        /// What the listener is for.
        what: &'static str,
        /// The config key that sets the address.
        key: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `agent.data_dir` could not be created.
    #[error(
        "cannot create agent.data_dir {path}: {source}; set agent.data_dir to a writable directory"
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The ledger could not be opened.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The ledger URL could not be read from its env var or file.
    #[error("agent.ledger_url: {0}")]
    LedgerUrl(String),
    /// The external metrics API could not start.
    #[error(transparent)]
    Hpa(#[from] crate::hpa::HpaError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

impl MetricsSource for ReloadStatus {
    fn write_metrics(&self, w: &mut MetricsWriter) {
        ReloadStatus::write_metrics(self, w);
    }
}

use crate::slo::manager::now_ms;

async fn bind(
    addr: SocketAddr,
    what: &'static str,
    key: &'static str,
) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind {
            what,
            key,
            addr,
            source,
        })
}

/// Runs the agent until SIGTERM or SIGINT.
pub async fn run(source: ConfigSource, config: Config) -> Result<(), DaemonError> {
    let cancel = CancellationToken::new();
    let mut watcher = Watcher::new(source.clone()).map_err(DaemonError::Signals)?;
    spawn_signal_handler(cancel.clone()).map_err(DaemonError::Signals)?;

    let readiness = Arc::new(Readiness::default());
    readiness.require(READY_LEDGER);
    let reload = Arc::new(ReloadStatus::new());

    let data_dir = config.agent.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(|source| DaemonError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let ledger_url = config.ledger_url().map_err(DaemonError::LedgerUrl)?;
    let ledger = match &ledger_url {
        Some(url) => Ledger::open_url(url.expose()).await?,
        None => Ledger::open_sqlite(&data_dir).await?,
    };
    let agent_id = config.agent_id();
    // Leader election: on a Postgres ledger only (validated); otherwise always the leader.
    let elector = LeaderElector::new(
        &config.agent.leader_election,
        ledger_url.filter(|u| u.expose().starts_with("postgres")),
        agent_id.clone(),
    );
    if config.agent.leader_election.enabled && !elector.enabled() {
        warn!(
            ledger = %ledger.target(),
            "agent.leader_election is enabled but the ledger is not Postgres; leader election is off and this agent always leads"
        );
    }
    let started_ms = now_ms();
    ledger
        .start_run(&agent_id, env!("CARGO_PKG_VERSION"), started_ms)
        .await?;
    readiness.done(READY_LEDGER);
    info!(ledger = %ledger.target(), agent_id = %agent_id, "ledger open");

    let store = Arc::new(SeriesStore::new());
    let scrape = ScrapeManager::new(&config.scrape, store.clone(), readiness.clone());
    let slo = SloManager::new(
        config.slos.clone(),
        config.agent.evaluation_interval,
        store.clone(),
        ledger.clone(),
        agent_id.clone(),
        started_ms,
        readiness.clone(),
        config.agent.role,
    )
    .await?;
    if elector.enabled() {
        slo.set_leader(elector.subscribe());
    }

    let collectors = CollectorManager::new(store.clone(), cancel.clone());
    collectors.apply_config(&config.collectors);

    let (notify_tx, notify_rx) = tokio::sync::mpsc::channel(1024);
    let dispatcher = Dispatcher::new(config.alerting.clone(), ledger.clone(), notify_tx).await;
    let outbox = Outbox::new(config.alerting.clone(), ledger.clone()).await;

    let alert_engine = AlertEngine::new(&config.alerting.rules);
    let alerts = alert_engine.handle();

    let mut tasks = JoinSet::new();
    let hpa = match &config.hpa {
        Some(h) => {
            let (hpa, server) =
                crate::hpa::Hpa::bind(h, &data_dir, store.clone(), slo.clone()).await?;
            tasks.spawn(server.run(cancel.clone()));
            Some(hpa)
        }
        None => None,
    };
    let grafana = crate::dashboards::GrafanaSync::start_with_leader(
        &config,
        cancel.clone(),
        elector.subscribe(),
    );
    let mut sources: Vec<Arc<dyn MetricsSource>> = vec![
        reload.clone(),
        Arc::new(scrape.clone()),
        Arc::new(slo.clone()),
        Arc::new(collectors.clone()),
        Arc::new(alerts.clone()),
        Arc::new(dispatcher.clone()),
        Arc::new(outbox.clone()),
        Arc::new(elector.clone()),
    ];
    if let Some(h) = &hpa {
        sources.push(Arc::new(h.clone()));
    }
    let mut router = api::router(AppState {
        readiness: readiness.clone(),
        sources,
        scrape: Some(scrape.clone()),
        slo: Some(slo.clone()),
        collectors: Some(collectors.clone()),
        dispatcher: Some(dispatcher.clone()),
        outbox: Some(outbox.clone()),
        ledger: Some(ledger.clone()),
    });
    router = router.merge(elector.router(role_name(config.agent.role)));

    let demo = if config.demo.enabled {
        let addr =
            crate::config::parse_listen(&config.demo.listen).unwrap_or(([127, 0, 0, 1], 0).into());
        let listener = bind(addr, "the demo service", "demo.listen").await?;
        let local = listener.local_addr().unwrap_or(addr);
        let demo = Demo::new(&config.demo);
        router = router.merge(demo.control_router());
        tasks.spawn(demo.clone().run(listener, cancel.clone()));
        info!(
            "demo service on http://{local}/metrics (raise its error rate: curl -XPOST http://{local}/demo/error-rate -d 0.2)"
        );
        Some(demo)
    } else {
        None
    };

    tasks.spawn(scrape.clone().run(cancel.clone()));

    let listener = bind(config.listen_addr(), "the HTTP API", "agent.listen").await?;
    let local = listener.local_addr().unwrap_or(config.listen_addr());
    tasks.spawn(api::serve(listener, router, cancel.clone()));
    info!("listening on http://{local}");

    tasks.spawn(elector.clone().run(cancel.clone()));
    tasks.spawn(slo.clone().run(cancel.clone()));
    tasks.spawn(
        outbox
            .clone()
            .run_with_leader(notify_rx, cancel.clone(), elector.subscribe()),
    );
    tasks.spawn(
        dispatcher
            .clone()
            .run_with_leader(cancel.clone(), elector.subscribe()),
    );
    tasks.spawn(run_alerts(
        alert_engine,
        slo.subscribe(),
        store.clone(),
        dispatcher.clone(),
        cancel.clone(),
    ));
    let mut current = config;

    while let Some(trigger) = watcher.changed(&cancel).await {
        match source.load() {
            Ok(new) => {
                warn_restart_needed(&current, &new);
                if let Some(demo) = &demo {
                    demo.apply_config(&new.demo);
                }
                scrape.apply_config(&new.scrape);
                collectors.apply_config(&new.collectors);
                alerts.apply_config(&new.alerting.rules);
                dispatcher.apply_config(new.alerting.clone());
                outbox.apply_config(new.alerting.clone());
                slo.apply_config(new.slos.clone(), new.agent.evaluation_interval);
                if let (Some(hpa), Some(h)) = (&hpa, &new.hpa) {
                    hpa.apply_config(h);
                }
                if let Some(g) = &grafana {
                    g.apply_config(&new);
                }
                current = new;
                reload.record(true);
                info!(trigger = trigger.as_str(), "configuration reloaded");
            }
            Err(err) => {
                reload.record(false);
                for problem in err.to_string().lines() {
                    error!(
                        trigger = trigger.as_str(),
                        problem, "configuration reload failed; keeping the previous configuration"
                    );
                }
            }
        }
    }

    let grace = current.agent.shutdown_grace_period;
    info!(grace = %humantime::format_duration(grace), "shutting down");
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    let drained = match drained {
        Ok(()) => tokio::time::timeout(grace, collectors.join()).await,
        Err(e) => Err(e),
    };
    if drained.is_err() {
        warn!("shutdown grace period over; abandoning unfinished tasks");
        tasks.abort_all();
    }
    // Only now, with the outbox drained, may another replica start sending.
    elector.release().await;
    if let Err(err) = ledger.finish_run(&agent_id, started_ms, now_ms()).await {
        warn!(error = %err, "could not record the clean stop in the ledger");
    }
    ledger.close().await;
    info!("stopped");
    Ok(())
}

/// Evaluates the alert rules after every SLO round and hands the alerts to the dispatcher.
async fn run_alerts(
    mut engine: AlertEngine,
    mut rounds: tokio::sync::watch::Receiver<(i64, Arc<Vec<crate::slo::engine::SloStatus>>)>,
    store: Arc<SeriesStore>,
    dispatcher: Dispatcher,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = rounds.changed() => if changed.is_err() { break },
        }
        let (now, statuses) = rounds.borrow_and_update().clone();
        let alerts = engine.evaluate_shared(now, &statuses, &store);
        dispatcher.update(alerts, now);
    }
}

fn role_name(role: crate::config::Role) -> &'static str {
    match role {
        crate::config::Role::Standalone => "standalone",
        crate::config::Role::Node => "node",
        crate::config::Role::Aggregator => "aggregator",
    }
}

fn warn_restart_needed(old: &Config, new: &Config) {
    let checks = [
        (old.agent.listen != new.agent.listen, "agent.listen"),
        (old.agent.data_dir != new.agent.data_dir, "agent.data_dir"),
        (old.agent.id != new.agent.id, "agent.id"),
        (old.agent.role != new.agent.role, "agent.role"),
        (old.demo.enabled != new.demo.enabled, "demo.enabled"),
        (
            old.hpa.as_ref().map(|h| &h.listen) != new.hpa.as_ref().map(|h| &h.listen),
            "hpa.listen",
        ),
        (old.grafana.is_some() != new.grafana.is_some(), "grafana"),
        (
            old.agent.leader_election != new.agent.leader_election,
            "agent.leader_election",
        ),
        (
            old.agent.ledger_url != new.agent.ledger_url
                || old.agent.ledger_url_env != new.agent.ledger_url_env,
            "agent.ledger_url",
        ),
    ];
    for (changed, key) in checks {
        if changed {
            warn!(
                key,
                "changed in the configuration; restart vigil to apply it"
            );
        }
    }
}

fn spawn_signal_handler(cancel: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = name, "received signal; shutting down gracefully");
        cancel.cancel();
        // A second signal during shutdown means "now".
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        warn!("second signal; exiting immediately");
        std::process::exit(1);
    });
    Ok(())
}
