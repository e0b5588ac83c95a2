//! The dispatcher: routes every alert through the route tree into groups and emits one
//! [`Notification`] per group when it is due, exactly as Alertmanager's dispatcher and
//! notification pipeline do:
//!
//! - a new group waits `group_wait` (or flushes at once when its alert started firing longer
//!   than `group_wait` ago and the group never flushed), then flushes every `group_interval`;
//! - at a flush the alerts muted by tier inhibition (`Alert::inhibited_by`), by `inhibit_rules`
//!   or by an active silence are left out, and a notification is emitted only when the
//!   receiver has not been told about a firing alert yet, when alerts resolved, or when
//!   `repeat_interval` has passed since the last notification of an unchanged firing group
//!   (Alertmanager's `DedupStage`, with resolved notifications always emitted: receivers with
//!   `send_resolved: false` drop them);
//! - resolved alerts are dropped from their group after the flush that reported them, and an
//!   empty group is removed.
//!
//! Each notification carries an idempotency key made of the receiver, the group key and a hash
//! of the alerts' (fingerprint, state), so the outbox never delivers the same change twice (a
//! repeat of an unchanged group gets a numbered key, and so does the next incident of a group
//! whose receiver was told everything resolved or was muted). Silences are kept in the ledger. The API
//! reads alerts, routes and silences through the methods here. Built and run by the daemon.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Notification;
use super::config::AlertingConfig;
use super::inhibit::Inhibitions;
use super::route::{Route, TimeInterval};
use super::silence::{self, PostableSilence, Silence, SilenceState};
use crate::alert::{Alert, AlertState};
use crate::api::metrics::{MetricsSource, MetricsWriter};
use crate::store::ledger::Ledger;

/// Errors of the silence operations, as the API reports them.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// The request is invalid (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// No silence with this id (HTTP 404).
    #[error("silence {0} not found")]
    NotFound(String),
    /// The ledger could not store it (HTTP 500).
    #[error("cannot store the silence in the ledger: {0}")]
    Ledger(#[source] sqlx::Error),
}

/// Routes alerts into groups and emits notifications when groups are due. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Mutex<State>>,
    wake: Arc<Notify>,
    ledger: Option<Ledger>,
    out: mpsc::Sender<Notification>,
}

/// What the API shows about one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertView {
    /// The alert as of the last round.
    pub alert: Alert,
    /// Its fingerprint (16 hex digits).
    pub fingerprint: String,
    /// The receivers its route(s) end at.
    pub receivers: Vec<String>,
    /// Ids of the active silences that mute it.
    pub silenced_by: Vec<String>,
    /// Why it is inhibited: the tier inhibition reason and/or the fingerprint of the alert
    /// whose inhibit rule mutes it.
    pub inhibited_by: Vec<String>,
    /// Names of the time intervals that mute its routes now.
    pub muted_by: Vec<String>,
}

/// One alert group, as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    /// Alertmanager's group key.
    pub key: String,
    /// The receiver.
    pub receiver: String,
    /// The group labels.
    pub labels: BTreeMap<String, String>,
    /// Its alerts (firing, and resolved ones not reported yet).
    pub alerts: Vec<Alert>,
}

struct State {
    config: Arc<AlertingConfig>,
    root: Option<Route>,
    intervals: HashMap<String, TimeInterval>,
    /// Last round's alerts, by fingerprint (for the API).
    current: BTreeMap<u64, Arc<Alert>>,
    /// Alerts that fire (Alertmanager's alert store), by fingerprint.
    active: BTreeMap<u64, Arc<Alert>>,
    /// The groups (key, receiver) each label set routes to, by fingerprint: routing is done
    /// once per label set, not once per round (cleared with the configuration).
    routed: HashMap<u64, Arc<[Routed]>>,
    groups: BTreeMap<(String, String), Group>,
    /// What each (group key, receiver) was last told (Alertmanager's notification log).
    nflog: HashMap<(String, String), Entry>,
    /// Per (group key, receiver): how many times its notification log entry was forgotten
    /// (everything resolved, or everything muted). Part of the idempotency key, so that the
    /// next incident of the same alerts (or the same alerts told again after a silence) is a
    /// new notification for the outbox and not a duplicate of the first one.
    episodes: HashMap<(String, String), u32>,
    /// Episode counters changed since the last flush, to be written to the ledger before any
    /// notification that uses them is emitted.
    episodes_dirty: Vec<((String, String), u32)>,
    silences: BTreeMap<String, Silence>,
    emitted: BTreeMap<String, u64>,
    /// Wall clock at `origin`; times follow tokio's clock from there, so that a paused
    /// clock pauses the dispatcher too.
    wall_origin_ms: i64,
    origin: tokio::time::Instant,
    /// A clock set by hand (tests drive the dispatcher through simulated time).
    manual_ms: Option<i64>,
    /// Whether this replica leads (`agent.leader_election`). A follower runs the same groups
    /// and timers but emits nothing, writes no episodes and counts nothing as emitted.
    leader: bool,
}

struct Group {
    key: String,
    receiver: String,
    labels: BTreeMap<String, String>,
    route: Route,
    alerts: BTreeMap<u64, Arc<Alert>>,
    /// Next flush, ms on the dispatcher's clock.
    next_flush: i64,
    has_flushed: bool,
}

/// Where one label set goes: a group (key, receiver) of a route.
struct Routed {
    id: (String, String),
    labels: BTreeMap<String, String>,
    route: Route,
}

struct Entry {
    firing: BTreeSet<u64>,
    resolved: BTreeSet<u64>,
    at: i64,
    content: u64,
    repeats: u32,
}

impl Dispatcher {
    /// A dispatcher for `config`, emitting on `out`; silences live in `ledger` (loaded now).
    pub async fn new(
        config: Arc<AlertingConfig>,
        ledger: Ledger,
        out: mpsc::Sender<Notification>,
    ) -> Self {
        let d = Self::build(config, Some(ledger.clone()), out);
        let now = d.now_ms();
        match silence::load(ledger.pool(), now).await {
            Ok(list) => {
                let n = list.len();
                if let Ok(mut st) = d.inner.lock() {
                    st.silences = list.into_iter().map(|s| (s.id.clone(), s)).collect();
                }
                info!(silences = n, "silences loaded from the ledger");
            }
            Err(e) => {
                warn!(ledger = %ledger.target(), error = %e, "cannot load silences from the ledger; starting without them")
            }
        }
        match load_episodes(&ledger).await {
            Ok(list) => {
                if let Ok(mut st) = d.inner.lock() {
                    st.episodes = list;
                }
            }
            Err(e) => {
                warn!(ledger = %ledger.target(), error = %e, "cannot load notification episodes from the ledger; a recurring incident may be deduplicated by the outbox")
            }
        }
        d
    }

    /// A dispatcher without a ledger (silences live in memory only): for tests and tools.
    pub fn in_memory(config: Arc<AlertingConfig>, out: mpsc::Sender<Notification>) -> Self {
        Self::build(config, None, out)
    }

    fn build(
        config: Arc<AlertingConfig>,
        ledger: Option<Ledger>,
        out: mpsc::Sender<Notification>,
    ) -> Self {
        let mut st = State {
            config: Arc::new(AlertingConfig::default()),
            root: None,
            intervals: HashMap::new(),
            current: BTreeMap::new(),
            active: BTreeMap::new(),
            routed: HashMap::new(),
            groups: BTreeMap::new(),
            nflog: HashMap::new(),
            episodes: HashMap::new(),
            episodes_dirty: Vec::new(),
            silences: BTreeMap::new(),
            emitted: BTreeMap::new(),
            wall_origin_ms: chrono::Utc::now().timestamp_millis(),
            origin: tokio::time::Instant::now(),
            manual_ms: None,
            leader: true,
        };
        st.set_config(config);
        Self {
            inner: Arc::new(Mutex::new(st)),
            wake: Arc::new(Notify::new()),
            ledger,
            out,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough data (maps only); go on.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Now, in ms since the epoch, on the dispatcher's clock (which follows tokio's, so that
    /// tests with a paused clock see consistent times).
    pub fn now_ms(&self) -> i64 {
        self.state().now_ms()
    }

    /// The alerts of this round (all pending, firing and just-resolved ones), owned or shared
    /// with the alert engine (`Vec<Alert>` or `Vec<Arc<Alert>>`). A firing alert missing from a
    /// round counts as resolved at `now_ms`.
    pub fn update<A: Into<Arc<Alert>>>(&self, alerts: Vec<A>, now_ms: i64) {
        let mut st = self.state();
        st.update(alerts, now_ms);
        drop(st);
        self.wake.notify_one();
    }

    /// A new configuration (reload): the groups are rebuilt from the firing alerts; what
    /// receivers were told is kept, so nothing is re-sent that was sent already.
    pub fn apply_config(&self, config: Arc<AlertingConfig>) {
        let mut st = self.state();
        st.set_config(config);
        st.groups.clear();
        let active: Vec<Arc<Alert>> = st.active.values().cloned().collect();
        for a in active {
            st.insert(&a);
        }
        st.groups.retain(|_, g| !g.alerts.is_empty());
        drop(st);
        self.wake.notify_one();
    }

    /// Runs the group timers until `cancel`, always as the leader.
    pub async fn run(self, cancel: CancellationToken) {
        let (_keep, leader) = watch::channel(true);
        self.run_with_leader(cancel, leader).await;
    }

    /// Runs the group timers until `cancel`; emits notifications only while `leader` is true
    /// (`agent.leader_election`). A follower keeps routing, grouping and flushing (so the API
    /// shows the same alerts and groups on every replica) but drops what it would emit. On
    /// becoming the leader it takes over from the ledger: see [`Dispatcher::take_over`].
    pub async fn run_with_leader(
        self,
        cancel: CancellationToken,
        mut leader: watch::Receiver<bool>,
    ) {
        let mut leading = *leader.borrow_and_update();
        let mut watching = true;
        self.state().leader = leading;
        loop {
            let (next, now) = {
                let st = self.state();
                (st.next_flush(), st.now_ms())
            };
            let sleep = async {
                match next {
                    Some(t) => {
                        tokio::time::sleep(Duration::from_millis((t - now).max(0) as u64)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wake.notified() => {},
                _ = sleep => {},
                changed = leader.changed(), if watching => {
                    if changed.is_err() {
                        watching = false;
                    }
                }
            }
            let now_leading = *leader.borrow_and_update();
            if now_leading != leading {
                leading = now_leading;
                if leading {
                    self.take_over().await;
                } else {
                    let mut st = self.state();
                    st.leader = false;
                    st.episodes_dirty.clear();
                }
            }
            let (due, episodes) = {
                let mut st = self.state();
                let now = st.now_ms();
                let due = st.flush_due(now);
                let episodes = std::mem::take(&mut st.episodes_dirty);
                if !st.leader {
                    // A follower tells nobody: what it would emit is the leader's job.
                    continue;
                }
                (due, episodes)
            };
            if let Some(ledger) = &self.ledger {
                for ((group, receiver), episode) in episodes {
                    if let Err(e) = store_episode(ledger, &receiver, &group, episode).await {
                        warn!(ledger = %ledger.target(), error = %e, receiver, "cannot store a notification episode in the ledger");
                    }
                }
            }
            for n in due {
                if self.out.send(n).await.is_err() {
                    warn!("the notification outbox is gone; stopping the dispatcher");
                    return;
                }
            }
        }
    }

    /// Becoming the leader: what receivers were told is what the ledger's outbox holds, not
    /// what this replica computed as a follower. The notification log is rebuilt from the
    /// newest notification of every (group, receiver) in the outbox (pending ones are sent by
    /// this replica's outbox), episodes and silences are reloaded, alerts told firing that no
    /// longer fire are put back as resolved, and every group that already flushed is flushed
    /// now, so that whatever the old leader did not get to send is sent once, and nothing it
    /// sent is sent again.
    pub async fn take_over(&self) {
        let Some(ledger) = &self.ledger else {
            self.state().leader = true;
            return;
        };
        let told = match super::outbox::last_told(ledger).await {
            Ok(t) => Some(t),
            Err(e) => {
                warn!(ledger = %ledger.target(), error = %e, "cannot read what the previous leader notified; keeping this replica's own view (a notification may repeat or be missed)");
                None
            }
        };
        let episodes = load_episodes(ledger).await;
        let silences = silence::load(ledger.pool(), self.now_ms()).await;
        let mut st = self.state();
        let now = st.now_ms();
        if let Ok(e) = episodes {
            st.episodes = e;
        }
        st.episodes_dirty.clear();
        if let Ok(list) = silences {
            st.silences = list.into_iter().map(|s| (s.id.clone(), s)).collect();
        }
        let mut resend = 0usize;
        if let Some(told) = told {
            st.nflog.clear();
            for n in told {
                let firing: BTreeSet<u64> = n
                    .alerts
                    .iter()
                    .filter(|a| a.state == AlertState::Firing)
                    .map(|a| crate::alert::fingerprint(&a.labels))
                    .collect();
                if firing.is_empty() {
                    continue;
                }
                let resolved = n
                    .alerts
                    .iter()
                    .filter(|a| a.state == AlertState::Resolved)
                    .map(|a| crate::alert::fingerprint(&a.labels))
                    .collect();
                let repeats = n
                    .idempotency_key
                    .rsplit_once("|r")
                    .and_then(|(_, r)| r.parse().ok())
                    .unwrap_or(0);
                let id = (n.group_key.clone(), n.receiver.clone());
                st.nflog.insert(
                    id.clone(),
                    Entry {
                        firing: firing.clone(),
                        resolved,
                        at: n.created_ms,
                        content: content_hash(&n.alerts),
                        repeats,
                    },
                );
                // Told firing, not firing any more: the receiver must hear it resolved.
                for a in &n.alerts {
                    let fp = crate::alert::fingerprint(&a.labels);
                    if a.state != AlertState::Firing || st.active.contains_key(&fp) {
                        continue;
                    }
                    let mut r = a.clone();
                    r.state = AlertState::Resolved;
                    r.resolved_at_ms = Some(now);
                    let r = Arc::new(r);
                    let routes = st.routes(fp, &r.labels);
                    let Some(route) = routes.iter().find(|x| x.id == id) else {
                        continue;
                    };
                    let g = st.groups.entry(id.clone()).or_insert_with(|| Group {
                        key: id.0.clone(),
                        receiver: id.1.clone(),
                        labels: route.labels.clone(),
                        route: route.route.clone(),
                        alerts: BTreeMap::new(),
                        next_flush: now,
                        has_flushed: true,
                    });
                    if g.alerts
                        .get(&fp)
                        .is_none_or(|x| x.state != AlertState::Resolved)
                    {
                        g.alerts.insert(fp, r);
                    }
                    resend += 1;
                }
            }
        }
        for g in st.groups.values_mut() {
            if g.has_flushed {
                g.next_flush = g.next_flush.min(now);
            }
        }
        st.leader = true;
        let groups = st.groups.len();
        let told_groups = st.nflog.len();
        drop(st);
        info!(
            groups,
            told_groups,
            resolved_to_send = resend,
            "dispatcher took over as the leader from the notifications in the ledger"
        );
        self.wake.notify_one();
    }

    /// Every alert of the last round with its routing, silences and inhibitions.
    pub fn alerts(&self) -> Vec<AlertView> {
        self.state().views()
    }

    /// The current groups.
    pub fn groups(&self) -> Vec<GroupView> {
        self.state()
            .groups
            .values()
            .map(|g| GroupView {
                key: g.key.clone(),
                receiver: g.receiver.clone(),
                labels: g.labels.clone(),
                alerts: g.alerts.values().map(|a| Alert::clone(a)).collect(),
            })
            .collect()
    }

    /// Every silence (expired ones for 5 days), oldest first.
    pub fn silences(&self) -> Vec<Silence> {
        let st = self.state();
        let mut list: Vec<Silence> = st.silences.values().cloned().collect();
        list.sort_by(|a, b| (a.starts_at_ms, &a.id).cmp(&(b.starts_at_ms, &b.id)));
        list
    }

    /// One silence.
    pub fn silence(&self, id: &str) -> Option<Silence> {
        self.state().silences.get(id).cloned()
    }

    /// Creates a silence, or changes the one named by `id`; returns its id. An active
    /// silence whose matchers or start change is expired and replaced by a new one, as in
    /// Alertmanager.
    pub async fn put_silence(&self, post: PostableSilence) -> Result<String, SilenceError> {
        let now = self.now_ms();
        let previous = match &post.id {
            Some(id) if !id.is_empty() => Some(
                self.silence(id)
                    .ok_or_else(|| SilenceError::NotFound(id.clone()))?,
            ),
            _ => None,
        };
        let mut new = post
            .into_silence(silence::new_id(), now)
            .map_err(SilenceError::Invalid)?;
        let mut expire_old = None;
        if let Some(old) = previous {
            let in_place = old.state(now) == SilenceState::Pending
                || (old.state(now) == SilenceState::Active
                    && old.matchers == new.matchers
                    && (new.starts_at_ms == old.starts_at_ms || new.starts_at_ms <= now));
            if in_place {
                new.id = old.id.clone();
                if old.state(now) == SilenceState::Active {
                    new.starts_at_ms = old.starts_at_ms;
                }
            } else if old.state(now) == SilenceState::Active {
                let mut o = old.clone();
                o.ends_at_ms = now;
                o.updated_at_ms = now;
                expire_old = Some(o);
            }
        }
        if let Some(ledger) = &self.ledger {
            if let Some(o) = &expire_old {
                silence::store(ledger.pool(), o)
                    .await
                    .map_err(SilenceError::Ledger)?;
            }
            silence::store(ledger.pool(), &new)
                .await
                .map_err(SilenceError::Ledger)?;
        }
        let id = new.id.clone();
        let mut st = self.state();
        if let Some(o) = expire_old {
            st.silences.insert(o.id.clone(), o);
        }
        info!(silence = %id, created_by = %new.created_by, "silence stored");
        st.silences.insert(id.clone(), new);
        drop(st);
        self.wake.notify_one();
        Ok(id)
    }

    /// Expires a silence now (a pending one ends before it starts).
    pub async fn expire_silence(&self, id: &str) -> Result<(), SilenceError> {
        let now = self.now_ms();
        let Some(mut s) = self.silence(id) else {
            return Err(SilenceError::NotFound(id.to_string()));
        };
        if s.state(now) == SilenceState::Expired {
            return Err(SilenceError::Invalid(format!(
                "silence {id} is already expired"
            )));
        }
        if s.starts_at_ms > now {
            s.starts_at_ms = now;
        }
        s.ends_at_ms = now;
        s.updated_at_ms = now;
        if let Some(ledger) = &self.ledger {
            silence::store(ledger.pool(), &s)
                .await
                .map_err(SilenceError::Ledger)?;
        }
        info!(silence = %id, "silence expired");
        self.state().silences.insert(id.to_string(), s);
        self.wake.notify_one();
        Ok(())
    }

    /// The receiver names of the current configuration.
    pub fn receivers(&self) -> Vec<String> {
        self.state()
            .config
            .receivers
            .iter()
            .map(|r| r.name.clone())
            .collect()
    }

    /// Restarts the dispatcher's clock at `wall_ms` (ms since the epoch), following tokio's
    /// clock from now on. For tests and tools that drive the dispatcher through virtual time
    /// (`tokio::time::pause`) from a fixed wall-clock time (time intervals depend on the time
    /// of day). Call it before the first alert.
    pub fn start_clock_at(&self, wall_ms: i64) {
        let mut st = self.state();
        st.wall_origin_ms = wall_ms;
        st.origin = tokio::time::Instant::now();
        st.manual_ms = None;
    }

    /// When the dispatcher started (ms since the epoch).
    pub fn started_ms(&self) -> i64 {
        self.state().wall_origin_ms
    }
}

impl State {
    fn now_ms(&self) -> i64 {
        if let Some(ms) = self.manual_ms {
            return ms;
        }
        self.wall_origin_ms
            + tokio::time::Instant::now()
                .duration_since(self.origin)
                .as_millis() as i64
    }

    fn set_config(&mut self, config: Arc<AlertingConfig>) {
        self.root = config.route.as_ref().map(Route::root);
        self.routed.clear();
        self.intervals = config
            .time_intervals
            .iter()
            .map(|t| (t.name.clone(), TimeInterval::compile(t)))
            .collect();
        self.config = config;
    }

    fn update<A: Into<Arc<Alert>>>(&mut self, alerts: Vec<A>, now_ms: i64) {
        let mut current = BTreeMap::new();
        for a in alerts {
            let a: Arc<Alert> = a.into();
            current.insert(crate::alert::fingerprint(&a.labels), a);
        }
        // A firing alert that is not reported any more resolved now.
        let gone: Vec<u64> = self
            .active
            .keys()
            .filter(|fp| {
                current
                    .get(fp)
                    .is_none_or(|a| a.state == AlertState::Pending)
            })
            .copied()
            .collect();
        for fp in gone {
            if let Some(mut a) = self.active.remove(&fp) {
                let r = Arc::make_mut(&mut a);
                r.state = AlertState::Resolved;
                r.resolved_at_ms = Some(now_ms);
                self.insert(&a);
            }
        }
        for (fp, a) in &current {
            match a.state {
                AlertState::Pending => {}
                AlertState::Firing => {
                    self.active.insert(*fp, a.clone());
                    self.insert(a);
                }
                AlertState::Resolved => {
                    // Only alerts that fired are of interest to receivers.
                    if self.active.remove(fp).is_some() || self.in_any_group(*fp) {
                        self.insert(a);
                    }
                }
            }
        }
        self.current = current;
        // Groups created for a resolved alert that was in none of them stay empty.
        self.groups.retain(|_, g| !g.alerts.is_empty());
        if self.routed.len() > 2 * self.current.len() + 1024 {
            let current = &self.current;
            self.routed.retain(|fp, _| current.contains_key(fp));
        }
    }

    fn in_any_group(&self, fp: u64) -> bool {
        self.groups.values().any(|g| g.alerts.contains_key(&fp))
    }

    /// The groups an alert with `labels` (fingerprint `fp`) goes to, routed once.
    fn routes(&mut self, fp: u64, labels: &BTreeMap<String, String>) -> Arc<[Routed]> {
        if let Some(r) = self.routed.get(&fp) {
            return r.clone();
        }
        let Some(root) = &self.root else {
            return Arc::from(Vec::new());
        };
        let routed: Arc<[Routed]> = root
            .matches(labels)
            .into_iter()
            .map(|r| {
                let group_labels = r.group_labels(labels);
                Routed {
                    id: (r.group_key(&group_labels), r.receiver.clone()),
                    labels: group_labels,
                    route: r.clone(),
                }
            })
            .collect();
        self.routed.insert(fp, routed.clone());
        routed
    }

    /// Puts an alert (firing or resolved) into the group of every route it ends at. Groups
    /// left empty (a resolved alert that was in none) are removed by the caller.
    fn insert(&mut self, a: &Arc<Alert>) {
        let fp = crate::alert::fingerprint(&a.labels);
        let now_ms = self.now_ms();
        for r in self.routes(fp, &a.labels).iter() {
            if !self.groups.contains_key(&r.id) {
                self.groups.insert(
                    r.id.clone(),
                    Group {
                        key: r.id.0.clone(),
                        receiver: r.id.1.clone(),
                        labels: r.labels.clone(),
                        route: r.route.clone(),
                        alerts: BTreeMap::new(),
                        next_flush: now_ms + r.route.group_wait.as_millis() as i64,
                        has_flushed: false,
                    },
                );
            }
            let Some(g) = self.groups.get_mut(&r.id) else {
                continue;
            };
            if a.state == AlertState::Resolved && !g.alerts.contains_key(&fp) {
                continue;
            }
            g.alerts.insert(fp, a.clone());
            // Alertmanager flushes at once when the alert's wait is already over.
            let started = a.fired_at_ms.unwrap_or(a.active_at_ms);
            let waited = now_ms - started;
            if !g.has_flushed && waited > g.route.group_wait.as_millis() as i64 {
                g.next_flush = now_ms;
            }
        }
    }

    fn next_flush(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next_flush).min()
    }

    fn silenced_by(&self, labels: &BTreeMap<String, String>, now_ms: i64) -> Vec<String> {
        self.silences
            .values()
            .filter(|s| s.mutes(labels, now_ms))
            .map(|s| s.id.clone())
            .collect()
    }

    fn time_muted(&self, r: &Route, now_ms: i64) -> Vec<String> {
        let mut out: Vec<String> = r
            .mute_time_intervals
            .iter()
            .filter(|n| self.intervals.get(*n).is_some_and(|t| t.contains(now_ms)))
            .cloned()
            .collect();
        if !r.active_time_intervals.is_empty()
            && !r
                .active_time_intervals
                .iter()
                .any(|n| self.intervals.get(n).is_some_and(|t| t.contains(now_ms)))
        {
            out.push(format!(
                "outside active_time_intervals {}",
                r.active_time_intervals.join(", ")
            ));
        }
        out
    }

    /// Flushes every group due at `now`; returns the notifications to emit.
    /// Starts the next episode of a (group key, receiver): what it was told is forgotten.
    fn next_episode(&mut self, id: &(String, String)) {
        let e = self.episodes.entry(id.clone()).or_default();
        *e += 1;
        let e = *e;
        self.episodes_dirty.push((id.clone(), e));
    }

    fn flush_due(&mut self, now: i64) -> Vec<Notification> {
        let due: Vec<(String, String)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush <= now)
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        let now_ms = now;
        let mut out = Vec::new();
        let config = self.config.clone();
        let inhibitions =
            Inhibitions::new(&config.inhibit_rules, self.active.values().map(|a| &**a));
        for id in due {
            let Some(g) = self.groups.get(&id) else {
                continue;
            };
            let entry = self.nflog.get(&id);
            let told_firing = entry.map(|e| e.firing.clone()).unwrap_or_default();
            let mut alerts: Vec<Alert> = Vec::new();
            for (fp, a) in &g.alerts {
                let include = match a.state {
                    // The receiver hears about a resolution only if it heard about the firing.
                    AlertState::Resolved => told_firing.contains(fp),
                    _ => {
                        a.inhibited_by.is_none()
                            && inhibitions.inhibited_by(&a.labels).is_none()
                            && self.silenced_by(&a.labels, now_ms).is_empty()
                    }
                };
                if include {
                    alerts.push(Alert::clone(a));
                }
            }
            let firing: BTreeSet<u64> = alerts
                .iter()
                .filter(|a| a.state == AlertState::Firing)
                .map(|a| crate::alert::fingerprint(&a.labels))
                .collect();
            let resolved: BTreeSet<u64> = alerts
                .iter()
                .filter(|a| a.state == AlertState::Resolved)
                .map(|a| crate::alert::fingerprint(&a.labels))
                .collect();
            let muted_by_time = !self.time_muted(&g.route, now_ms).is_empty();
            let repeat = g.route.repeat_interval;
            let needs = !muted_by_time && needs_update(entry, &firing, &resolved, now, repeat);
            let content = content_hash(&alerts);
            if needs && alerts.is_empty() {
                // Everything the receiver was told about is muted now: like Alertmanager,
                // send nothing but forget what was told, so it is told again once unmuted.
                self.nflog.remove(&id);
                self.next_episode(&id);
            } else if needs {
                let repeats = match entry {
                    Some(e) if e.content == content => e.repeats + 1,
                    _ => 0,
                };
                let mut key = format!("{}|{}|{content:016x}", g.receiver, g.key);
                match self.episodes.get(&id) {
                    Some(e) if *e > 0 => key.push_str(&format!("|e{e}")),
                    _ => {}
                }
                if repeats > 0 {
                    key.push_str(&format!("|r{repeats}"));
                }
                sort_alerts(&mut alerts);
                out.push(Notification {
                    receiver: g.receiver.clone(),
                    group_key: g.key.clone(),
                    group_labels: g.labels.clone(),
                    alerts,
                    idempotency_key: key,
                    created_ms: now_ms,
                });
                if self.leader {
                    *self.emitted.entry(g.receiver.clone()).or_default() += 1;
                }
                if firing.is_empty() {
                    self.nflog.remove(&id);
                    self.next_episode(&id);
                } else {
                    self.nflog.insert(
                        id.clone(),
                        Entry {
                            firing,
                            resolved,
                            at: now,
                            content,
                            repeats,
                        },
                    );
                }
            }
            if let Some(g) = self.groups.get_mut(&id) {
                g.has_flushed = true;
                g.next_flush = now + g.route.group_interval.as_millis() as i64;
                if !muted_by_time {
                    g.alerts.retain(|_, a| a.state != AlertState::Resolved);
                }
                if g.alerts.is_empty() {
                    self.groups.remove(&id);
                }
            }
        }
        out
    }

    fn views(&self) -> Vec<AlertView> {
        let now_ms = self.now_ms();
        let inhibitions = Inhibitions::new(
            &self.config.inhibit_rules,
            self.active.values().map(|a| &**a),
        );
        self.current
            .iter()
            .map(|(fp, a)| {
                let routes = self
                    .root
                    .as_ref()
                    .map(|r| r.matches(&a.labels))
                    .unwrap_or_default();
                let mut receivers: Vec<String> = Vec::new();
                let mut muted_by = Vec::new();
                for r in &routes {
                    if !receivers.contains(&r.receiver) {
                        receivers.push(r.receiver.clone());
                    }
                    for m in self.time_muted(r, now_ms) {
                        if !muted_by.contains(&m) {
                            muted_by.push(m);
                        }
                    }
                }
                let mut inhibited_by = Vec::new();
                if let Some(why) = &a.inhibited_by {
                    inhibited_by.push(why.clone());
                }
                if let Some(src) = inhibitions.inhibited_by(&a.labels) {
                    inhibited_by.push(format!("{src:016x}"));
                }
                AlertView {
                    alert: Alert::clone(a),
                    fingerprint: format!("{fp:016x}"),
                    receivers,
                    silenced_by: self.silenced_by(&a.labels, now_ms),
                    inhibited_by,
                    muted_by,
                }
            })
            .collect()
    }
}

/// Alertmanager's `DedupStage.needsUpdate`, with resolved notifications enabled.
fn needs_update(
    entry: Option<&Entry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    now: i64,
    repeat: Duration,
) -> bool {
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&e.firing) {
        return true;
    }
    if firing.is_empty() {
        return !e.firing.is_empty();
    }
    if !resolved.is_subset(&e.resolved) {
        return true;
    }
    now >= e.at + repeat.as_millis() as i64
}

/// The episode counters kept in the ledger, by (group key, receiver).
async fn load_episodes(ledger: &Ledger) -> Result<HashMap<(String, String), u32>, sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query("SELECT receiver, group_key, episode FROM notify_episodes")
        .fetch_all(ledger.pool())
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        let receiver: String = r.try_get(0)?;
        let group: String = r.try_get(1)?;
        let episode: i64 = r.try_get(2)?;
        out.insert(
            (group, receiver),
            u32::try_from(episode).unwrap_or(u32::MAX),
        );
    }
    Ok(out)
}

async fn store_episode(
    ledger: &Ledger,
    receiver: &str,
    group: &str,
    episode: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notify_episodes (receiver, group_key, episode) VALUES ($1, $2, $3) \
         ON CONFLICT (receiver, group_key) DO UPDATE SET episode = excluded.episode",
    )
    .bind(receiver)
    .bind(group)
    .bind(i64::from(episode))
    .execute(ledger.pool())
    .await?;
    Ok(())
}

fn content_hash(alerts: &[Alert]) -> u64 {
    let mut pairs: Vec<(u64, AlertState)> = alerts
        .iter()
        .map(|a| (crate::alert::fingerprint(&a.labels), a.state))
        .collect();
    pairs.sort_by_key(|(fp, _)| *fp);
    // FNV-1a: stable across processes and versions (std's hasher is not).
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for (fp, state) in pairs {
        h.write(&fp.to_be_bytes());
        state.hash(&mut h);
    }
    h.finish()
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Alertmanager's `AlertSlice` order: by `job`, then `instance`, then the label set.
fn sort_alerts(alerts: &mut [Alert]) {
    alerts.sort_by(|a, b| {
        for k in ["job", "instance"] {
            let (x, y) = (a.labels.get(k), b.labels.get(k));
            if x != y {
                return x.cmp(&y);
            }
        }
        a.labels.cmp(&b.labels)
    });
}

impl MetricsSource for Dispatcher {
    fn write_metrics(&self, w: &mut MetricsWriter) {
        let st = self.state();
        let now_ms = st.now_ms();
        w.family(
            "vigil_alerts_groups",
            "Number of alert groups the dispatcher holds.",
            "gauge",
        );
        w.sample("vigil_alerts_groups", &[], st.groups.len() as f64);
        w.family(
            "vigil_notifications_emitted_total",
            "Notifications the dispatcher handed to the outbox, by receiver.",
            "counter",
        );
        for r in &st.config.receivers {
            let n = st.emitted.get(&r.name).copied().unwrap_or(0);
            w.sample(
                "vigil_notifications_emitted_total",
                &[("receiver", &r.name)],
                n as f64,
            );
        }
        w.family(
            "vigil_silences",
            "Number of silences by state (active, pending, expired).",
            "gauge",
        );
        for state in [
            SilenceState::Active,
            SilenceState::Pending,
            SilenceState::Expired,
        ] {
            let n = st
                .silences
                .values()
                .filter(|s| s.state(now_ms) == state)
                .count();
            w.sample("vigil_silences", &[("state", state.as_str())], n as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Arc<AlertingConfig> {
        let cfg = crate::notify::config::parse_files(
            &[("alerts.yaml".to_string(), yaml.to_string())],
            std::path::Path::new("."),
        );
        match cfg {
            Ok(c) => Arc::new(c),
            Err(p) => panic!(
                "{}",
                p.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    const T0: i64 = 1_800_000_000_000;

    /// Drives a dispatcher through simulated time: every flush happens at its own instant.
    struct Harness {
        d: Dispatcher,
        _rx: mpsc::Receiver<Notification>,
        queue: std::collections::VecDeque<(i64, Notification)>,
    }

    impl Harness {
        fn new(yaml: &str) -> Self {
            let (tx, rx) = mpsc::channel(64);
            let d = Dispatcher::in_memory(config(yaml), tx);
            d.state().manual_ms = Some(T0);
            Self {
                d,
                _rx: rx,
                queue: Default::default(),
            }
        }

        fn alert(&self, pairs: &[(&str, &str)], state: AlertState) -> Alert {
            let now = self.d.now_ms();
            Alert {
                labels: pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                annotations: BTreeMap::new(),
                state,
                active_at_ms: now,
                fired_at_ms: (state != AlertState::Pending).then_some(now),
                resolved_at_ms: (state == AlertState::Resolved).then_some(now),
                value: 1.0,
                inhibited_by: None,
                generator_url: String::new(),
            }
        }

        /// Runs every flush due until `ms`, each at its own time.
        fn advance_to(&mut self, ms: i64) {
            let mut st = self.d.state();
            loop {
                match st.next_flush() {
                    Some(t) if t <= ms => {
                        let now = t.max(st.now_ms());
                        st.manual_ms = Some(now);
                        for n in st.flush_due(now) {
                            self.queue.push_back((now, n));
                        }
                    }
                    _ => break,
                }
            }
            st.manual_ms = Some(ms.max(st.now_ms()));
        }

        fn at(&mut self, secs: i64) {
            self.advance_to(T0 + secs * 1000);
        }

        fn feed(&self, alerts: &[Alert]) {
            self.d.update(alerts.to_vec(), self.d.now_ms());
        }

        /// The next notification: (seconds since start, receiver, [(id label, state)]).
        fn next(&mut self) -> (i64, String, Vec<(String, AlertState)>, Notification) {
            for _ in 0..10_000 {
                if let Some((at, n)) = self.queue.pop_front() {
                    let alerts = n
                        .alerts
                        .iter()
                        .map(|a| (a.labels.get("id").cloned().unwrap_or_default(), a.state))
                        .collect();
                    return ((at - T0) / 1000, n.receiver.clone(), alerts, n);
                }
                let Some(t) = self.d.state().next_flush() else {
                    break;
                };
                self.advance_to(t);
            }
            panic!("no notification");
        }

        /// Asserts that nothing is emitted until `secs` after start.
        fn nothing_until(&mut self, secs: i64) {
            self.at(secs);
            assert!(self.queue.is_empty(), "unexpected: {:?}", self.queue);
        }
    }

    use AlertState::{Firing, Resolved};

    fn ids(list: &[(&str, AlertState)]) -> Vec<(String, AlertState)> {
        list.iter().map(|(i, s)| (i.to_string(), *s)).collect()
    }

    const TIMERS: &str = "
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
receivers: [{name: team}]
";

    #[test]
    fn group_wait_interval_repeat_and_resolve_as_alertmanager() {
        let mut h = Harness::new(TIMERS);
        let a1 = h.alert(&[("alertname", "X"), ("id", "1")], Firing);
        h.feed(std::slice::from_ref(&a1));
        h.at(60);
        let a2 = h.alert(&[("alertname", "X"), ("id", "2")], Firing);
        h.feed(&[a1.clone(), a2.clone()]);

        let (at, rcv, alerts, n) = h.next();
        assert_eq!((at, rcv.as_str()), (30, "team"));
        assert_eq!(alerts, ids(&[("1", Firing)]));
        assert_eq!(n.group_key, r#"{}:{alertname="X"}"#);
        assert_eq!(n.status(), "firing");
        let first_key = n.idempotency_key.clone();
        assert!(
            first_key.starts_with(r#"team|{}:{alertname="X"}|"#),
            "{first_key}"
        );

        // The change is sent one group_interval after the first flush.
        let (at, _, alerts, n) = h.next();
        assert_eq!(at, 330);
        assert_eq!(alerts, ids(&[("1", Firing), ("2", Firing)]));
        let second_key = n.idempotency_key.clone();
        assert_ne!(second_key, first_key);

        // Unchanged: re-sent at the first flush at least repeat_interval later (330 + 12 * 300).
        let (at, _, alerts, n) = h.next();
        assert_eq!(at, 3930);
        assert_eq!(alerts, ids(&[("1", Firing), ("2", Firing)]));
        assert_eq!(n.idempotency_key, format!("{second_key}|r1"));

        // One resolves: sent at the next flush, then dropped from the group.
        h.at(4000);
        let mut r1 = a1.clone();
        r1.state = Resolved;
        r1.resolved_at_ms = Some(h.d.now_ms());
        h.feed(&[r1, a2.clone()]);
        let (at, _, alerts, _) = h.next();
        assert_eq!(at, 4230);
        assert_eq!(alerts, ids(&[("1", Resolved), ("2", Firing)]));

        // The last one disappears from the round: resolved, sent once, the group is gone.
        h.at(4600);
        h.feed(&[]);
        let (at, _, alerts, n) = h.next();
        assert_eq!(at, 4830);
        assert_eq!(alerts, ids(&[("2", Resolved)]));
        assert_eq!(n.status(), "resolved");
        h.nothing_until(20_000);
        assert!(h.d.groups().is_empty());
    }

    #[test]
    fn an_alert_that_fired_long_ago_flushes_at_once_and_reload_does_not_resend() {
        let mut h = Harness::new(TIMERS);
        let mut old = h.alert(&[("alertname", "Old"), ("id", "o")], Firing);
        old.fired_at_ms = Some(h.d.now_ms() - 3_600_000);
        h.at(1);
        h.feed(&[old.clone()]);
        let (at, _, alerts, _) = h.next();
        assert_eq!((at, alerts), (1, ids(&[("o", Firing)])));
        // A reload rebuilds the groups; the notification log keeps the receiver from being
        // told again.
        h.d.apply_config(config(TIMERS));
        h.nothing_until(3000);
    }

    #[test]
    fn pending_alerts_and_resolved_before_notified_are_never_sent() {
        let mut h = Harness::new(TIMERS);
        let p = h.alert(&[("alertname", "P"), ("id", "p")], AlertState::Pending);
        let f = h.alert(&[("alertname", "F"), ("id", "f")], Firing);
        h.feed(&[p.clone(), f.clone()]);
        h.at(10);
        let mut fr = f.clone();
        fr.state = Resolved;
        h.feed(&[p, fr]);
        h.nothing_until(2000);
    }

    const TREE: &str = r#"
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: [severity="page"]
      receiver: pager
      continue: true
    - matchers: [severity=~"page|ticket"]
      receiver: chat
      group_by: ['...']
      group_wait: 20s
receivers: [{name: default}, {name: pager}, {name: chat}]
inhibit_rules:
  - source_matchers: [severity=page]
    target_matchers: [severity=ticket]
    equal: [slo]
"#;

    #[test]
    fn continue_routes_to_several_receivers_with_their_own_groups() {
        let mut h = Harness::new(TREE);
        let page = h.alert(
            &[("alertname", "Burn"), ("severity", "page"), ("id", "p")],
            Firing,
        );
        let other = h.alert(&[("alertname", "Disk"), ("id", "d")], Firing);
        h.feed(&[page, other]);
        let mut got = Vec::new();
        for _ in 0..3 {
            let (at, rcv, alerts, n) = h.next();
            got.push((at, rcv, alerts, n.group_key));
        }
        got.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        assert_eq!(
            got,
            vec![
                (
                    10,
                    "default".into(),
                    ids(&[("d", Firing)]),
                    r#"{}:{alertname="Disk"}"#.into()
                ),
                (
                    10,
                    "pager".into(),
                    ids(&[("p", Firing)]),
                    r#"{}/{severity="page"}:{alertname="Burn"}"#.into()
                ),
                (
                    20,
                    "chat".into(),
                    ids(&[("p", Firing)]),
                    r#"{}/{severity=~"page|ticket"}:{alertname="Burn", id="p", severity="page"}"#
                        .into()
                ),
            ]
        );
    }

    #[tokio::test]
    async fn inhibition_tiers_and_silences_mute() {
        let mut h = Harness::new(TREE);
        let page = h.alert(
            &[
                ("alertname", "Burn"),
                ("severity", "page"),
                ("slo", "a"),
                ("id", "page"),
            ],
            Firing,
        );
        let ticket_a = h.alert(
            &[
                ("alertname", "Burn"),
                ("severity", "ticket"),
                ("slo", "a"),
                ("id", "ta"),
            ],
            Firing,
        );
        let mut tier = h.alert(&[("alertname", "Tier"), ("id", "tier")], Firing);
        tier.inhibited_by = Some("a more severe tier of the same SLO is firing".into());
        h.feed(&[page.clone(), ticket_a.clone(), tier.clone()]);
        let views = h.d.alerts();
        let ta = views
            .iter()
            .find(|v| v.alert.labels.get("id").map(String::as_str) == Some("ta"))
            .map(|v| v.inhibited_by.clone());
        assert_eq!(ta, Some(vec![page.fingerprint()]));

        // Only the page reaches pager (10s) and chat (20s); the ticket and the tier never do.
        let (at, rcv, alerts, _) = h.next();
        assert_eq!(
            (at, rcv.as_str(), alerts),
            (10, "pager", ids(&[("page", Firing)]))
        );
        let (at, rcv, alerts, _) = h.next();
        assert_eq!(
            (at, rcv.as_str(), alerts),
            (20, "chat", ids(&[("page", Firing)]))
        );
        h.nothing_until(200);

        // Silence the page: the ticket is still inhibited (a silenced source still inhibits).
        let post: PostableSilence = serde_json::from_value(serde_json::json!({
            "matchers": [{"name": "id", "value": "page", "isRegex": false, "isEqual": true}],
            "startsAt": silence::rfc3339(h.d.now_ms()),
            "endsAt": silence::rfc3339(h.d.now_ms() + 86_400_000),
            "createdBy": "test", "comment": "maintenance"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let id =
            h.d.put_silence(post)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        let views = h.d.alerts();
        let silenced: Vec<_> = views.iter().filter(|v| !v.silenced_by.is_empty()).collect();
        assert_eq!(silenced.len(), 1);
        assert_eq!(silenced[0].silenced_by, vec![id.clone()]);
        h.nothing_until(3000);

        // The page resolves while silenced: the receivers were told nothing is firing any
        // more (Alertmanager's behaviour), so no resolved message; the ticket is now free.
        let mut resolved = page.clone();
        resolved.state = Resolved;
        h.feed(&[resolved, ticket_a.clone(), tier.clone()]);
        let (at, rcv, alerts, _) = h.next();
        assert_eq!((rcv.as_str(), alerts), ("chat", ids(&[("ta", Firing)])));
        // Its group flushed (empty) at 20s and every 5m since: 20 + 10 * 300.
        assert_eq!(at, 3020);
        // Then re-sent once repeat_interval (default 4h) has passed.
        h.nothing_until(3020 + 4 * 3600 - 1);
        let (at, _, _, n) = h.next();
        assert_eq!(at, 3020 + 4 * 3600);
        assert!(n.idempotency_key.ends_with("|r1"), "{}", n.idempotency_key);
        h.d.expire_silence(&id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(h.d.expire_silence(&id).await.is_err());
        assert!(matches!(
            h.d.expire_silence("nope").await,
            Err(SilenceError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn an_expired_silence_lets_the_alert_notify_at_the_next_flush() {
        let mut h = Harness::new(TIMERS);
        let post: PostableSilence = serde_json::from_value(serde_json::json!({
            "matchers": [{"name": "alertname", "value": "X|Y", "isRegex": true}],
            "startsAt": silence::rfc3339(h.d.now_ms()),
            "endsAt": silence::rfc3339(h.d.now_ms() + 100_000),
            "createdBy": "test", "comment": "c"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        h.d.put_silence(post)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let a = h.alert(&[("alertname", "X"), ("id", "x")], Firing);
        h.feed(&[a]);
        // Silenced at the first flush (30s); the silence ends at 100s; next flush at 330s.
        let (at, _, alerts, _) = h.next();
        assert_eq!((at, alerts), (330, ids(&[("x", Firing)])));
    }

    /// Flushes what is due at `secs` after T0 on `d`'s manual clock.
    fn flush_at(d: &Dispatcher, secs: i64) -> Vec<Notification> {
        let mut st = d.state();
        st.manual_ms = Some(T0 + secs * 1000);
        st.flush_due(T0 + secs * 1000)
    }

    fn firing_alert(id: &str, state: AlertState) -> Alert {
        Alert {
            labels: [("alertname", "X"), ("id", id)]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            state,
            active_at_ms: T0,
            fired_at_ms: Some(T0),
            resolved_at_ms: (state == AlertState::Resolved).then_some(T0),
            value: 1.0,
            inhibited_by: None,
            generator_url: String::new(),
        }
    }

    /// A follower that becomes the leader starts from what the ledger's outbox says the
    /// receivers were told, not from what it computed itself while following.
    #[tokio::test]
    async fn a_new_leader_takes_over_from_the_outbox_in_the_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open_sqlite(dir.path()).await.expect("ledger");
        let cfg = config(TIMERS);
        let outbox = crate::notify::outbox::Outbox::new(cfg.clone(), ledger.clone()).await;
        let (tx, _rx) = mpsc::channel(16);

        // The old leader told `team` that a and b fire.
        let old = Dispatcher::new(cfg.clone(), ledger.clone(), tx.clone()).await;
        old.state().manual_ms = Some(T0);
        old.update(
            vec![firing_alert("a", Firing), firing_alert("b", Firing)],
            T0,
        );
        let told = flush_at(&old, 31);
        assert_eq!(told.len(), 1);
        assert!(outbox.enqueue(&told[0]).await.expect("enqueue"));

        // The follower saw the same; then b stopped firing, which it "told" (and dropped) on
        // its own, while the old leader died before telling it.
        let new = Dispatcher::new(cfg.clone(), ledger.clone(), tx).await;
        new.state().manual_ms = Some(T0);
        new.state().leader = false;
        new.update(
            vec![firing_alert("a", Firing), firing_alert("b", Firing)],
            T0,
        );
        assert_eq!(
            flush_at(&new, 31).len(),
            1,
            "the follower computes, the run loop drops"
        );
        new.state().manual_ms = Some(T0 + 40_000);
        new.update(vec![firing_alert("a", Firing)], T0 + 40_000);
        assert_eq!(flush_at(&new, 331).len(), 1);
        assert!(
            flush_at(&new, 700).is_empty(),
            "the follower thinks all is told"
        );

        // Taking over: the receiver was told a and b fire, so it must hear that b resolved,
        // once, and nothing about a.
        new.take_over().await;
        let out = flush_at(&new, 701);
        assert_eq!(out.len(), 1, "{out:?}");
        let states: Vec<(String, AlertState)> = out[0]
            .alerts
            .iter()
            .map(|a| (a.labels["id"].clone(), a.state))
            .collect();
        assert_eq!(
            states,
            vec![("a".to_string(), Firing), ("b".to_string(), Resolved)]
        );
        assert_ne!(out[0].idempotency_key, told[0].idempotency_key);
        assert!(flush_at(&new, 2000).is_empty(), "told once");
        assert_eq!(
            new.state().emitted.get("team"),
            Some(&1),
            "only the leader counts"
        );
        ledger.close().await;
    }

    /// Nothing in the ledger (the old leader died before enqueueing): the new leader sends
    /// what its follower self computed but never sent.
    #[tokio::test]
    async fn a_new_leader_sends_what_the_old_one_never_enqueued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::open_sqlite(dir.path()).await.expect("ledger");
        let (tx, _rx) = mpsc::channel(16);
        let d = Dispatcher::new(config(TIMERS), ledger.clone(), tx).await;
        d.state().manual_ms = Some(T0);
        d.state().leader = false;
        d.update(vec![firing_alert("a", Firing)], T0);
        assert_eq!(flush_at(&d, 31).len(), 1);
        assert!(flush_at(&d, 100).is_empty());
        d.take_over().await;
        let out = flush_at(&d, 101);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].status(), "firing");
        ledger.close().await;
    }

    #[test]
    fn metrics() {
        let h = Harness::new(TIMERS);
        h.feed(&[h.alert(&[("alertname", "X")], Firing)]);
        let mut w = MetricsWriter::new();
        h.d.write_metrics(&mut w);
        let text = w.finish();
        assert!(text.contains("vigil_alerts_groups 1\n"), "{text}");
        assert!(text.contains("vigil_notifications_emitted_total{receiver=\"team\"} 0\n"));
        assert!(text.contains("vigil_silences{state=\"active\"} 0\n"));
    }
}
