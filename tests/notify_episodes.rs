//! Idempotency keys across a restart: after an incident resolves, the next incident of the same
//! alerts is a new notification, also when the agent restarted in between (the episode counter
//! that makes its key new is kept in the ledger). Real SQLite ledger, real dispatcher loop, real
//! (short) timers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil::alert::{Alert, AlertState};
use vigil::notify::Notification;
use vigil::notify::dispatch::Dispatcher;
use vigil::store::ledger::Ledger;

const ALERTS: &str = "
route:
  receiver: team
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 100ms
  repeat_interval: 1h
receivers: [{name: team}]
";

fn alert(state: AlertState, at_ms: i64) -> Alert {
    Alert {
        labels: [("alertname", "X"), ("id", "a")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: BTreeMap::new(),
        state,
        active_at_ms: at_ms,
        fired_at_ms: Some(at_ms),
        resolved_at_ms: (state == AlertState::Resolved).then_some(at_ms),
        value: 1.0,
        inhibited_by: None,
        generator_url: String::new(),
    }
}

async fn start(ledger: &Ledger) -> (Dispatcher, mpsc::Receiver<Notification>, CancellationToken) {
    let config = vigil::notify::config::parse_files(
        &[("alerts.yaml".to_string(), ALERTS.to_string())],
        std::path::Path::new("."),
    )
    .unwrap_or_else(|p| panic!("{p:?}"));
    let (tx, rx) = mpsc::channel(16);
    let d = Dispatcher::new(Arc::new(config), ledger.clone(), tx).await;
    let cancel = CancellationToken::new();
    tokio::spawn(d.clone().run(cancel.clone()));
    (d, rx, cancel)
}

async fn next(rx: &mut mpsc::Receiver<Notification>) -> Notification {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no notification within 10 s"))
        .unwrap_or_else(|| panic!("the dispatcher stopped"))
}

#[tokio::test]
async fn the_next_incident_after_a_restart_has_a_new_idempotency_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ledger = Ledger::open_sqlite(dir.path())
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // First incident: fires, then resolves.
    let (d, mut rx, cancel) = start(&ledger).await;
    let t = d.now_ms();
    d.update(vec![alert(AlertState::Firing, t)], t);
    let fired = next(&mut rx).await;
    assert_eq!(fired.alerts[0].state, AlertState::Firing);
    let t = d.now_ms();
    d.update(vec![alert(AlertState::Resolved, t)], t);
    let resolved = next(&mut rx).await;
    assert_eq!(resolved.alerts[0].state, AlertState::Resolved);
    // The episode is written before the dispatcher sends anything else; give the loop a turn.
    tokio::time::sleep(Duration::from_millis(200)).await;
    cancel.cancel();
    drop(d);

    // Restart: a new dispatcher on the same ledger; the same alert fires again.
    let (d, mut rx, cancel) = start(&ledger).await;
    let t = d.now_ms();
    d.update(vec![alert(AlertState::Firing, t)], t);
    let again = next(&mut rx).await;
    assert_eq!(again.alerts[0].state, AlertState::Firing);
    assert_ne!(
        again.idempotency_key, fired.idempotency_key,
        "the second incident must not reuse the first one's key (the outbox would drop it)"
    );
    assert_eq!(
        again.idempotency_key,
        format!("{}|e1", fired.idempotency_key)
    );
    cancel.cancel();
}
