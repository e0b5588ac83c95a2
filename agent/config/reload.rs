//! Notices when the configuration should be reloaded: on SIGHUP, and when the file's content
//! changes (polled, so it also sees Kubernetes ConfigMap symlink swaps that inotify can miss).
//! Keeps the reload status exported as `vigil_config_last_reload_*`.
//!
//! The daemon owns the loop: it waits on [`Watcher::changed`], loads, and applies to every
//! manager only when the whole new configuration is valid.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::ConfigSource;
use crate::api::metrics::MetricsWriter;

/// How often the config file is checked for a change of content.
pub const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP.
    Signal,
    /// The file's content changed.
    FileChanged,
}

impl Trigger {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signal => "SIGHUP",
            Self::FileChanged => "file change",
        }
    }
}

/// Waits for reload triggers.
pub struct Watcher {
    source: ConfigSource,
    last_hash: Option<u64>,
    hangup: Signal,
}

impl Watcher {
    /// Installs the SIGHUP handler (from now on SIGHUP no longer terminates the process) and
    /// remembers the current content of the file.
    pub fn new(source: ConfigSource) -> std::io::Result<Self> {
        let hangup = signal(SignalKind::hangup())?;
        let last_hash = content_hash(&source);
        Ok(Self {
            source,
            last_hash,
            hangup,
        })
    }

    /// Resolves at the next trigger, or None once `cancel` fires.
    pub async fn changed(&mut self, cancel: &CancellationToken) -> Option<Trigger> {
        let mut tick = tokio::time::interval(FILE_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return None,
                _ = self.hangup.recv() => {
                    self.last_hash = content_hash(&self.source);
                    return Some(Trigger::Signal);
                }
                _ = tick.tick() => {
                    let now = content_hash(&self.source);
                    // A file that vanished (mid-swap) is not a change: wait until it is back.
                    if now.is_some() && now != self.last_hash {
                        self.last_hash = now;
                        return Some(Trigger::FileChanged);
                    }
                }
            }
        }
    }
}

fn content_hash(source: &ConfigSource) -> Option<u64> {
    match source {
        ConfigSource::File(path) => std::fs::read(path).ok().map(|bytes| {
            let mut h = DefaultHasher::new();
            bytes.hash(&mut h);
            h.finish()
        }),
        ConfigSource::Embedded => Some(0),
    }
}

/// Result of the last reload, exported on `/metrics` with Prometheus' names.
#[derive(Debug)]
pub struct ReloadStatus {
    successful: AtomicBool,
    last_success_seconds: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

impl ReloadStatus {
    /// The initial load counts as a successful reload, as in Prometheus.
    pub fn new() -> Self {
        let s = Self {
            successful: AtomicBool::new(true),
            last_success_seconds: AtomicU64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
        };
        s.last_success_seconds
            .store(now_seconds().to_bits(), Ordering::Relaxed);
        s
    }

    /// Records a reload outcome.
    pub fn record(&self, ok: bool) {
        self.successful.store(ok, Ordering::Relaxed);
        if ok {
            self.reloads_ok.fetch_add(1, Ordering::Relaxed);
            self.last_success_seconds
                .store(now_seconds().to_bits(), Ordering::Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the last reload succeeded.
    pub fn last_successful(&self) -> bool {
        self.successful.load(Ordering::Relaxed)
    }

    /// Writes the reload series.
    pub fn write_metrics(&self, w: &mut MetricsWriter) {
        w.family(
            "vigil_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
            "gauge",
        );
        w.sample(
            "vigil_config_last_reload_successful",
            &[],
            f64::from(u8::from(self.last_successful())),
        );
        w.family(
            "vigil_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            "gauge",
        );
        w.sample(
            "vigil_config_last_reload_success_timestamp_seconds",
            &[],
            f64::from_bits(self.last_success_seconds.load(Ordering::Relaxed)),
        );
        w.family(
            "vigil_config_reloads_total",
            "Configuration reload attempts by result.",
            "counter",
        );
        w.sample(
            "vigil_config_reloads_total",
            &[("result", "success")],
            self.reloads_ok.load(Ordering::Relaxed) as f64,
        );
        w.sample(
            "vigil_config_reloads_total",
            &[("result", "failure")],
            self.reloads_failed.load(Ordering::Relaxed) as f64,
        );
    }
}

impl Default for ReloadStatus {
    fn default() -> Self {
        Self::new()
    }
}

/// Seconds since the Unix epoch, as a float.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
