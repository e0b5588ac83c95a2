//! Event buckets of one SLO instance and the window sums over them.
//!
//! Every event is added to a minute bucket (kept for 7 hours: the 5m to 6h alerting windows are
//! exact to the minute) and to an hour bucket (kept for the SLO window plus a day: 1d, 3d and
//! the SLO window are sums of whole hours, the current one partial). Sums of completed buckets
//! are cached and recomputed only when a completed bucket changes or a bucket rolls over, so an
//! evaluation round costs O(windows), not O(window length).
//!
//! Coverage: a window of n minutes sums the current minute and the n-1 before it, so it covers
//! between n-1 and n minutes; likewise for hour windows. This is the usual bucketed
//! approximation; it errs by at most one bucket at the old edge.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use super::budget::Counts;

/// One minute in ms.
pub const MINUTE_MS: i64 = 60_000;
/// One hour in ms.
pub const HOUR_MS: i64 = 3_600_000;
/// Minutes kept at minute resolution.
pub const FINE_MINUTES: i64 = 7 * 60;

/// Bucket rows as (index, counts).
pub type Rows = Vec<(i64, Counts)>;

/// A window to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// The `window` label value (`5m`, `1h`, `30d`, `month`).
    pub name: String,
    /// Length in ms (for calendar windows: unused; the period start is given at query time).
    pub length_ms: i64,
}

/// The alerting windows every SLO reports (multi-window multi-burn-rate needs them).
pub fn alerting_windows() -> Vec<WindowSpec> {
    [
        ("5m", 5),
        ("30m", 30),
        ("1h", 60),
        ("2h", 120),
        ("6h", 360),
        ("1d", 1440),
        ("3d", 4320),
    ]
    .into_iter()
    .map(|(n, m)| WindowSpec {
        name: n.to_string(),
        length_ms: m * MINUTE_MS,
    })
    .collect()
}

/// Formats a rolling window length as its label value (`30d`, `28d`, `12h`).
pub fn window_name(d: Duration) -> String {
    let s = d.as_secs();
    if s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else {
        format!("{}m", s / 60)
    }
}

#[derive(Debug, Clone)]
struct Ring {
    /// Index (time / unit) of `data[0]`.
    start: i64,
    data: VecDeque<Counts>,
    cap: usize,
}

impl Ring {
    fn new(cap: usize) -> Self {
        Self {
            start: 0,
            data: VecDeque::with_capacity(cap.min(1024)),
            cap,
        }
    }

    fn end(&self) -> i64 {
        self.start + self.data.len() as i64
    }

    /// Makes `idx` the newest bucket (no-op if it is older than the newest).
    fn advance_to(&mut self, idx: i64) {
        if self.data.is_empty() {
            self.start = idx;
            self.data.push_back(Counts::default());
            return;
        }
        let end = self.end();
        if idx < end {
            return;
        }
        if idx - end >= self.cap as i64 {
            self.data.clear();
            self.start = idx;
            self.data.push_back(Counts::default());
            return;
        }
        for _ in end..=idx {
            self.data.push_back(Counts::default());
        }
        while self.data.len() > self.cap {
            self.data.pop_front();
            self.start += 1;
        }
    }

    fn slot(&mut self, idx: i64) -> Option<&mut Counts> {
        if idx < self.start {
            // An older bucket the ring has not covered yet (a late event soon after start):
            // extend backwards while the ring stays within its capacity.
            if self.data.is_empty() || self.end() - idx > self.cap as i64 {
                return None;
            }
            for _ in idx..self.start {
                self.data.push_front(Counts::default());
            }
            self.start = idx;
        }
        self.data.get_mut((idx - self.start) as usize)
    }

    fn get(&self, idx: i64) -> Counts {
        if idx < self.start {
            return Counts::default();
        }
        self.data
            .get((idx - self.start) as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Sum of buckets with index in [from, to].
    fn sum(&self, from: i64, to: i64) -> Counts {
        let mut c = Counts::default();
        let lo = from.max(self.start);
        let hi = to.min(self.end() - 1);
        for i in lo..=hi {
            c.add(self.data[(i - self.start) as usize]);
        }
        c
    }
}

/// Buckets of one SLO instance.
#[derive(Debug, Clone)]
pub struct Buckets {
    minutes: Ring,
    hours: Ring,
    /// Minute/hour indices changed since the last [`Buckets::take_dirty`].
    dirty_minutes: BTreeSet<i64>,
    dirty_hours: BTreeSet<i64>,
    /// Cache of completed-bucket sums: (newest minute, newest hour, version) it was computed for.
    cache_key: (i64, i64, u64),
    cache: Vec<Counts>,
    version: u64,
}

impl Buckets {
    /// Buckets able to answer windows up to `longest`.
    pub fn new(longest: Duration) -> Self {
        let hours = (longest.as_secs() / 3600) as usize + 25;
        Self {
            minutes: Ring::new(FINE_MINUTES as usize),
            hours: Ring::new(hours),
            dirty_minutes: BTreeSet::new(),
            dirty_hours: BTreeSet::new(),
            cache_key: (i64::MIN, i64::MIN, 0),
            cache: Vec::new(),
            version: 0,
        }
    }

    /// Moves the newest buckets to `now_ms`.
    pub fn roll(&mut self, now_ms: i64) {
        self.minutes.advance_to(now_ms.div_euclid(MINUTE_MS));
        self.hours.advance_to(now_ms.div_euclid(HOUR_MS));
    }

    /// Adds events that happened at `t_ms` (clamped to `now_ms` against clock skew).
    pub fn add(&mut self, t_ms: i64, now_ms: i64, c: Counts) {
        if c.total == 0.0 && c.bad == 0.0 {
            return;
        }
        self.roll(now_ms);
        let t = t_ms.min(now_ms);
        let m = t.div_euclid(MINUTE_MS);
        let h = t.div_euclid(HOUR_MS);
        let newest_m = now_ms.div_euclid(MINUTE_MS);
        let newest_h = now_ms.div_euclid(HOUR_MS);
        if let Some(slot) = self.minutes.slot(m) {
            slot.add(c);
            self.dirty_minutes.insert(m);
            if m != newest_m {
                self.version += 1;
            }
        }
        if let Some(slot) = self.hours.slot(h) {
            slot.add(c);
            self.dirty_hours.insert(h);
            if h != newest_h {
                self.version += 1;
            }
        }
    }

    /// Sets a minute bucket (loading from the ledger).
    pub fn set_minute(&mut self, idx: i64, c: Counts) {
        self.minutes.advance_to(idx);
        if let Some(s) = self.minutes.slot(idx) {
            *s = c;
        }
        self.version += 1;
    }

    /// Sets an hour bucket (loading from the ledger).
    pub fn set_hour(&mut self, idx: i64, c: Counts) {
        self.hours.advance_to(idx);
        if let Some(s) = self.hours.slot(idx) {
            *s = c;
        }
        self.version += 1;
    }

    /// Buckets changed since the last call: (minute rows, hour rows) as (index, counts).
    pub fn take_dirty(&mut self) -> (Rows, Rows) {
        let m = std::mem::take(&mut self.dirty_minutes)
            .into_iter()
            .map(|i| (i, self.minutes.get(i)))
            .collect();
        let h = std::mem::take(&mut self.dirty_hours)
            .into_iter()
            .map(|i| (i, self.hours.get(i)))
            .collect();
        (m, h)
    }

    /// Sums of `windows` (rolling lengths) ending at `now_ms`. Windows up to 6h come from
    /// minute buckets, longer ones from hour buckets.
    pub fn sums(&mut self, now_ms: i64, windows: &[i64]) -> Vec<Counts> {
        self.roll(now_ms);
        let newest_m = now_ms.div_euclid(MINUTE_MS);
        let newest_h = now_ms.div_euclid(HOUR_MS);
        let key = (newest_m, newest_h, self.version);
        if self.cache_key != key || self.cache.len() != windows.len() {
            self.cache = windows
                .iter()
                .map(|&len| {
                    if len <= 6 * HOUR_MS {
                        let n = (len / MINUTE_MS).max(1);
                        self.minutes.sum(newest_m - n + 1, newest_m - 1)
                    } else {
                        let n = (len / HOUR_MS).max(1);
                        self.hours.sum(newest_h - n + 1, newest_h - 1)
                    }
                })
                .collect();
            self.cache_key = key;
        }
        let cur_m = self.minutes.get(newest_m);
        let cur_h = self.hours.get(newest_h);
        windows
            .iter()
            .zip(&self.cache)
            .map(|(&len, done)| {
                let mut c = *done;
                c.add(if len <= 6 * HOUR_MS { cur_m } else { cur_h });
                c
            })
            .collect()
    }

    /// Events from `start_ms` (a calendar period start) to `now_ms`. Whole hours come from hour
    /// buckets; an hour the start cuts is taken from minute buckets when they still cover it,
    /// else pro rata.
    pub fn since(&self, start_ms: i64, now_ms: i64) -> Counts {
        let first_h = start_ms.div_euclid(HOUR_MS);
        let newest_h = now_ms.div_euclid(HOUR_MS);
        let mut c = self.hours.sum(first_h + 1, newest_h);
        if start_ms.rem_euclid(HOUR_MS) == 0 {
            c.add(self.hours.get(first_h));
        } else {
            let first_m = start_ms.div_euclid(MINUTE_MS);
            let hour_end_m = (first_h + 1) * 60 - 1;
            if first_m >= self.minutes.start {
                c.add(self.minutes.sum(first_m, hour_end_m));
            } else {
                let share = 1.0 - (start_ms.rem_euclid(HOUR_MS) as f64 / HOUR_MS as f64);
                let h = self.hours.get(first_h);
                c.add(Counts {
                    bad: h.bad * share,
                    total: h.total * share,
                });
            }
        }
        c
    }

    /// Approximate memory held, in bytes.
    pub fn memory_bytes(&self) -> usize {
        (self.minutes.data.capacity() + self.hours.data.capacity() + self.cache.capacity())
            * std::mem::size_of::<Counts>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An hour boundary.
    const T0: i64 = 1_800_000_000_000;

    fn c(bad: f64, total: f64) -> Counts {
        Counts { bad, total }
    }

    #[test]
    fn minute_windows_are_exact() {
        let mut b = Buckets::new(Duration::from_secs(30 * 86400));
        // One event per minute for 10 minutes, the last 3 bad.
        for i in 0..10 {
            b.add(
                T0 + i * MINUTE_MS + 1000,
                T0 + i * MINUTE_MS + 1000,
                c(if i >= 7 { 1.0 } else { 0.0 }, 1.0),
            );
        }
        let now = T0 + 9 * MINUTE_MS + 30_000;
        let s = b.sums(now, &[5 * MINUTE_MS, 30 * MINUTE_MS, 24 * HOUR_MS]);
        assert_eq!(s[0], c(3.0, 5.0));
        assert_eq!(s[1], c(3.0, 10.0));
        assert_eq!(s[2], c(3.0, 10.0));
        // The same round again uses the cache and gives the same answer.
        assert_eq!(
            b.sums(now, &[5 * MINUTE_MS, 30 * MINUTE_MS, 24 * HOUR_MS]),
            s
        );
    }

    #[test]
    fn hour_windows_and_expiry() {
        let mut b = Buckets::new(Duration::from_secs(86400));
        b.add(T0, T0, c(1.0, 100.0));
        // 25 hours later the event is outside the 1d window and the ring has moved on.
        let later = T0 + 25 * HOUR_MS;
        b.add(later, later, c(0.0, 10.0));
        assert_eq!(b.sums(later, &[24 * HOUR_MS])[0], c(0.0, 10.0));
        // 23 hours later it is still inside.
        let mut b2 = Buckets::new(Duration::from_secs(86400));
        b2.add(T0, T0, c(1.0, 100.0));
        assert_eq!(
            b2.sums(T0 + 23 * HOUR_MS, &[24 * HOUR_MS])[0],
            c(1.0, 100.0)
        );
    }

    #[test]
    fn late_events_invalidate_the_cache() {
        let mut b = Buckets::new(Duration::from_secs(86400));
        let now = T0 + 10 * MINUTE_MS;
        b.add(now, now, c(0.0, 1.0));
        assert_eq!(b.sums(now, &[5 * MINUTE_MS])[0], c(0.0, 1.0));
        // An event from 2 minutes ago (a late scrape) lands in its own minute.
        b.add(now - 2 * MINUTE_MS, now, c(1.0, 1.0));
        assert_eq!(b.sums(now, &[5 * MINUTE_MS])[0], c(1.0, 2.0));
        // Future timestamps are clamped to now.
        b.add(now + HOUR_MS, now, c(0.0, 1.0));
        assert_eq!(b.sums(now, &[5 * MINUTE_MS])[0], c(1.0, 3.0));
    }

    #[test]
    fn gaps_longer_than_the_ring_reset_it() {
        let mut b = Buckets::new(Duration::from_secs(3 * 3600));
        b.add(T0, T0, c(1.0, 1.0));
        let much_later = T0 + 400 * HOUR_MS;
        assert_eq!(
            b.sums(much_later, &[5 * MINUTE_MS, 3 * HOUR_MS + 1]),
            vec![Counts::default(); 2]
        );
    }

    #[test]
    fn since_period_start_hour_aligned_and_half_hour() {
        let mut b = Buckets::new(Duration::from_secs(31 * 86400));
        for h in 0..48 {
            let t = T0 + h * HOUR_MS + 45 * MINUTE_MS;
            b.add(t, t, c(0.0, 10.0));
        }
        let now = T0 + 47 * HOUR_MS + 50 * MINUTE_MS;
        assert_eq!(b.since(T0 + 24 * HOUR_MS, now), c(0.0, 240.0));
        // A half-hour offset zone: the start cuts an hour; the minute buckets still cover it.
        assert_eq!(
            b.since(T0 + 44 * HOUR_MS + 30 * MINUTE_MS, now),
            c(0.0, 40.0)
        );
        // Older than the minute ring: pro rata (half of the cut hour's 10 events).
        assert_eq!(
            b.since(T0 + 10 * HOUR_MS + 30 * MINUTE_MS, now),
            c(0.0, 375.0)
        );
    }

    #[test]
    fn dirty_rows_for_the_ledger() {
        let mut b = Buckets::new(Duration::from_secs(86400));
        b.add(T0 + 5, T0 + 5, c(1.0, 2.0));
        let (m, h) = b.take_dirty();
        assert_eq!(m, vec![(T0 / MINUTE_MS, c(1.0, 2.0))]);
        assert_eq!(h, vec![(T0 / HOUR_MS, c(1.0, 2.0))]);
        assert_eq!(b.take_dirty(), (vec![], vec![]));
    }
}
