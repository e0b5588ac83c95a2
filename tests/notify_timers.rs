//! Routing, grouping timers, inhibition, silences and time intervals of the dispatcher, driven
//! through tokio's paused clock: the real `Dispatcher::run` loop with its own timers, the
//! alerts fed every 10 s as the daemon does after every SLO round, and the exact notifications
//! asserted at the exact virtual times they are emitted (Alertmanager's dispatcher semantics:
//! group_wait, group_interval, repeat_interval, resolved notices, inhibit rules, silences,
//! mute_time_intervals). Nothing here waits for real time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil::alert::{Alert, AlertState};
use vigil::notify::Notification;
use vigil::notify::dispatch::Dispatcher;
use vigil::notify::silence::PostableSilence;

use AlertState::{Firing, Resolved};

/// 2027-01-15T08:00:00Z, a Friday.
const T0: i64 = 1_800_000_000_000;
const ROUND: Duration = Duration::from_secs(10);

/// One notification as the tests compare it: (ms after start, receiver, [(id label, state)]).
type Seen = (i64, String, Vec<(String, AlertState)>);

/// A dispatcher running on the paused clock, fed every 10 s with `alerts`.
struct Rig {
    d: Dispatcher,
    rx: mpsc::Receiver<Notification>,
    start: Instant,
    alerts: Arc<Mutex<Vec<Alert>>>,
    cancel: CancellationToken,
    /// Every notification so far, in order, with its idempotency key.
    log: Vec<(Seen, String)>,
}

impl Rig {
    async fn new(yaml: &str, wall_start_ms: i64) -> Self {
        let config = vigil::notify::config::parse_files(
            &[("alerts.yaml".to_string(), yaml.to_string())],
            std::path::Path::new("."),
        )
        .unwrap_or_else(|p| panic!("{p:?}"));
        let (tx, rx) = mpsc::channel(64);
        let d = Dispatcher::in_memory(Arc::new(config), tx);
        d.start_clock_at(wall_start_ms);
        let cancel = CancellationToken::new();
        tokio::spawn(d.clone().run(cancel.clone()));
        let alerts: Arc<Mutex<Vec<Alert>>> = Arc::default();
        let (feed_d, feed_alerts, feed_cancel) = (d.clone(), alerts.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(ROUND);
            loop {
                tokio::select! {
                    _ = feed_cancel.cancelled() => break,
                    _ = tick.tick() => {},
                }
                let list = feed_alerts.lock().map(|l| l.clone()).unwrap_or_default();
                feed_d.update(list, feed_d.now_ms());
            }
        });
        Self {
            d,
            rx,
            start: Instant::now(),
            alerts,
            cancel,
            log: Vec::new(),
        }
    }

    /// Virtual ms since the start.
    fn elapsed_ms(&self) -> i64 {
        Instant::now().duration_since(self.start).as_millis() as i64
    }

    /// An alert as the engine reports it now.
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
            resolved_at_ms: (state == Resolved).then_some(now),
            value: 1.0,
            inhibited_by: None,
            generator_url: String::new(),
        }
    }

    /// From now on, every round reports `alerts` (a round runs at once, too).
    fn report(&self, alerts: Vec<Alert>) {
        if let Ok(mut l) = self.alerts.lock() {
            l.clone_from(&alerts);
        }
        self.d.update(alerts, self.d.now_ms());
    }

    /// Lets virtual time run to `secs` after the start; returns what was emitted meanwhile.
    async fn run_to(&mut self, secs: i64) -> Vec<Seen> {
        let until = self.start + Duration::from_secs(secs as u64);
        let mut out = Vec::new();
        loop {
            tokio::select! {
                biased;
                n = self.rx.recv() => {
                    let n = n.unwrap_or_else(|| panic!("the dispatcher stopped"));
                    let seen: Seen = (
                        self.elapsed_ms(),
                        n.receiver.clone(),
                        n.alerts
                            .iter()
                            .map(|a| (a.labels.get("id").cloned().unwrap_or_default(), a.state))
                            .collect(),
                    );
                    self.log.push((seen.clone(), n.idempotency_key.clone()));
                    out.push(seen);
                }
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        out
    }

    /// The idempotency key of the notification emitted at `ms` to `receiver`.
    fn key_at(&self, ms: i64, receiver: &str) -> String {
        self.log
            .iter()
            .find(|(s, _)| s.0 == ms && s.1 == receiver)
            .map(|(_, k)| k.clone())
            .unwrap_or_else(|| panic!("nothing sent to {receiver} at {ms} ms: {:?}", self.log))
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// (seconds, receiver, [(id, state)]) in ms.
fn seen(secs: i64, receiver: &str, alerts: &[(&str, AlertState)]) -> Seen {
    (
        secs * 1000,
        receiver.to_string(),
        alerts.iter().map(|(i, s)| (i.to_string(), *s)).collect(),
    )
}

fn silence(starts_ms: i64, ends_ms: i64, name: &str, value: &str) -> PostableSilence {
    serde_json::from_value(serde_json::json!({
        "matchers": [{"name": name, "value": value, "isRegex": false, "isEqual": true}],
        "startsAt": vigil::notify::silence::rfc3339(starts_ms),
        "endsAt": vigil::notify::silence::rfc3339(ends_ms),
        "createdBy": "notify_timers", "comment": "test"
    }))
    .unwrap_or_else(|e| panic!("{e}"))
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

#[tokio::test(start_paused = true)]
async fn group_wait_interval_repeat_and_resolved_notices_at_exact_virtual_times() {
    let mut r = Rig::new(TIMERS, T0).await;
    let a = r.alert(&[("alertname", "X"), ("id", "a")], Firing);
    r.report(vec![a.clone()]);
    // group_wait: the first notification 30 s after the group appeared.
    assert_eq!(r.run_to(60).await, vec![seen(30, "team", &[("a", Firing)])]);
    let b = r.alert(&[("alertname", "X"), ("id", "b")], Firing);
    r.report(vec![a.clone(), b.clone()]);
    // group_interval: the change goes out one interval after the last flush (30 + 300).
    assert_eq!(
        r.run_to(400).await,
        vec![seen(330, "team", &[("a", Firing), ("b", Firing)])]
    );
    // repeat_interval: an unchanged group is re-sent at the first flush at least 1 h after the
    // last notification: 330 + 3600 = 3930 (a flush time: 30 + 13 x 300).
    assert_eq!(
        r.run_to(4000).await,
        vec![seen(3930, "team", &[("a", Firing), ("b", Firing)])]
    );
    assert_eq!(
        r.key_at(3_930_000, "team"),
        format!("{}|r1", r.key_at(330_000, "team"))
    );
    assert_ne!(r.key_at(30_000, "team"), r.key_at(330_000, "team"));
    // a resolves (the engine reports it resolved): told at the next flush, with b still firing.
    let mut ar = a.clone();
    ar.state = Resolved;
    ar.resolved_at_ms = Some(r.d.now_ms());
    r.report(vec![ar, b.clone()]);
    assert_eq!(
        r.run_to(4300).await,
        vec![seen(4230, "team", &[("a", Resolved), ("b", Firing)])]
    );
    // b disappears from the rounds: resolved at once, told at the next flush; then silence.
    r.run_to(4600).await;
    r.report(vec![]);
    assert_eq!(
        r.run_to(20_000).await,
        vec![seen(4830, "team", &[("b", Resolved)])]
    );
    assert!(r.d.groups().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_next_incident_of_the_same_alert_is_a_new_notification() {
    let mut r = Rig::new(TIMERS, T0).await;
    let a = r.alert(&[("alertname", "X"), ("id", "a")], Firing);
    r.report(vec![a.clone()]);
    r.run_to(100).await;
    r.report(vec![]);
    assert_eq!(
        r.run_to(1000).await,
        vec![seen(330, "team", &[("a", Resolved)])]
    );
    // It fires again: a new group (group_wait again), and a key the outbox has not seen, so
    // that the page is delivered (the outbox drops a key it already holds).
    let again = r.alert(&[("alertname", "X"), ("id", "a")], Firing);
    r.report(vec![again]);
    assert_eq!(
        r.run_to(2000).await,
        vec![seen(1030, "team", &[("a", Firing)])]
    );
    assert_ne!(r.key_at(1_030_000, "team"), r.key_at(30_000, "team"));
}

const INHIBIT: &str = r#"
route:
  receiver: chat
  group_by: [alertname, severity]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: [severity="page"]
      receiver: pager
      group_wait: 10s
receivers: [{name: chat}, {name: pager}]
inhibit_rules:
  - source_matchers: [severity=page]
    target_matchers: [severity=ticket]
    equal: [slo]
"#;

#[tokio::test(start_paused = true)]
async fn inhibition_appears_and_disappears() {
    let mut r = Rig::new(INHIBIT, T0).await;
    let labels = |sev: &'static str, slo: &'static str, id: &'static str| {
        [
            ("alertname", "Burn"),
            ("severity", sev),
            ("slo", slo),
            ("id", id),
        ]
    };
    let page = r.alert(&labels("page", "a", "p"), Firing);
    let other = r.alert(&labels("ticket", "b", "o"), Firing);
    r.report(vec![page.clone(), other.clone()]);
    assert_eq!(
        r.run_to(100).await,
        vec![
            seen(10, "pager", &[("p", Firing)]),
            seen(30, "chat", &[("o", Firing)]),
        ]
    );
    // A ticket of the paged SLO starts firing at 100 s: inhibited, so the chat group's flushes
    // (330, 630, 930 s) have nothing new to tell.
    let ticket = r.alert(&labels("ticket", "a", "t"), Firing);
    r.report(vec![page.clone(), other.clone(), ticket.clone()]);
    let inhibited: Vec<(String, Vec<String>)> =
        r.d.alerts()
            .iter()
            .filter(|v| !v.inhibited_by.is_empty())
            .map(|v| (v.alert.labels["id"].clone(), v.inhibited_by.clone()))
            .collect();
    assert_eq!(inhibited, vec![("t".to_string(), vec![page.fingerprint()])]);
    assert!(r.run_to(1000).await.is_empty());
    // The page resolves at 1000 s: pager is told at its next flush (10 + 4 x 300); the
    // inhibition is gone, so chat tells the ticket at its next flush (30 + 4 x 300).
    let mut resolved = page.clone();
    resolved.state = Resolved;
    resolved.resolved_at_ms = Some(r.d.now_ms());
    r.report(vec![resolved, other.clone(), ticket.clone()]);
    assert_eq!(
        r.run_to(1500).await,
        vec![
            seen(1210, "pager", &[("p", Resolved)]),
            seen(1230, "chat", &[("o", Firing), ("t", Firing)]),
        ]
    );
    assert!(r.d.alerts().iter().all(|v| v.inhibited_by.is_empty()));
    // Unchanged from here: nothing until the repeat (1230 + 4 h = 15630, a flush time).
    assert_eq!(
        r.run_to(15_700).await,
        vec![seen(15_630, "chat", &[("o", Firing), ("t", Firing)])]
    );
}

#[tokio::test(start_paused = true)]
async fn a_silence_mutes_from_its_start_and_unmutes_when_it_expires() {
    let mut r = Rig::new(TIMERS, T0).await;
    // A silence that starts at 200 s and ends at 900 s (pending when created).
    let id =
        r.d.put_silence(silence(T0 + 200_000, T0 + 900_000, "id", "a"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.d.silences()[0].state(T0).as_str(), "pending");
    let a = r.alert(&[("alertname", "X"), ("id", "a")], Firing);
    r.report(vec![a.clone()]);
    // Told at 30 s; muted at the flushes of 330 and 630 s; told again at 930 s, after the end.
    assert_eq!(
        r.run_to(300).await,
        vec![seen(30, "team", &[("a", Firing)])]
    );
    assert_eq!(r.d.alerts()[0].silenced_by, vec![id.clone()]);
    assert_eq!(
        r.run_to(1000).await,
        vec![seen(930, "team", &[("a", Firing)])]
    );
    assert!(r.d.alerts()[0].silenced_by.is_empty());
    assert_ne!(r.key_at(930_000, "team"), r.key_at(30_000, "team"));

    // Silenced again at 1000 s (muted at the 1230 s flush, which forgets what was told),
    // expired through the API at 1300 s: told again at the next flush, 1530 s.
    let id =
        r.d.put_silence(silence(T0 + 1_000_000, T0 + 86_400_000, "id", "a"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.run_to(1300).await.is_empty());
    r.d.expire_silence(&id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.run_to(2000).await,
        vec![seen(1530, "team", &[("a", Firing)])]
    );
    let keys: std::collections::HashSet<String> = r.log.iter().map(|(_, k)| k.clone()).collect();
    assert_eq!(
        keys.len(),
        3,
        "every notification is new to the outbox: {:?}",
        r.log
    );
}

const NIGHTS: &str = r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: [severity="page"]
      receiver: pager
      mute_time_intervals: [nights]
receivers: [{name: team}, {name: pager}]
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: "00:00", end_time: "06:00"}]
"#;

#[tokio::test(start_paused = true)]
async fn a_mute_time_interval_holds_notifications_until_it_ends() {
    // 05:50 UTC: the pager route is muted until 06:00; the default route is not.
    let mut r = Rig::new(NIGHTS, T0 - 2 * 3_600_000 - 10 * 60_000).await;
    let page = r.alert(
        &[("alertname", "P"), ("severity", "page"), ("id", "p")],
        Firing,
    );
    let other = r.alert(&[("alertname", "O"), ("id", "o")], Firing);
    r.report(vec![page, other]);
    let muted: Vec<(String, Vec<String>)> =
        r.d.alerts()
            .iter()
            .map(|v| (v.alert.labels["id"].clone(), v.muted_by.clone()))
            .collect();
    assert!(
        muted.contains(&("p".to_string(), vec!["nights".to_string()])),
        "{muted:?}"
    );
    assert!(muted.contains(&("o".to_string(), vec![])), "{muted:?}");
    // Flushes at 30 s (05:50:30) and 330 s (05:55:30) are muted; 630 s (06:00:30) is not.
    assert_eq!(
        r.run_to(1000).await,
        vec![
            seen(30, "team", &[("o", Firing)]),
            seen(630, "pager", &[("p", Firing)]),
        ]
    );
}
