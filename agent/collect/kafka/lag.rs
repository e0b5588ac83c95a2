//! Lag maths of the `kafka` collector, kept pure so it can be tested hard: per-partition lag
//! (clamped, with a committed flag), the per-partition history kept across collections, the
//! consume rate and "seconds to drain" estimate, and a Burrow-style status per group.
//! Called by the collector in `mod.rs` once per collection.

use std::collections::{HashMap, VecDeque};

/// How many collections of history are kept per partition (Burrow's default window is 10
/// offsets).
pub const WINDOW: usize = 10;

/// The lag of one partition of one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionLag {
    /// Messages behind the end offset, never negative.
    pub lag: i64,
    /// Whether the group has a committed offset for the partition. When not, the lag counts
    /// from the oldest offset still in the log (what a consumer with
    /// `auto.offset.reset=earliest` would read).
    pub committed: bool,
}

/// Lag from the committed offset (`None` or negative: no commit) and the log's offsets.
pub fn partition_lag(committed: Option<i64>, oldest: i64, newest: i64) -> PartitionLag {
    match committed.filter(|c| *c >= 0) {
        Some(c) => PartitionLag {
            lag: (newest - c.max(oldest)).max(0),
            committed: true,
        },
        None => PartitionLag {
            lag: (newest - oldest).max(0),
            committed: false,
        },
    }
}

/// One observation of a partition by a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Collection time, seconds (monotonic or epoch; only differences are used).
    pub t: f64,
    /// Committed offset (the oldest offset when there is no commit).
    pub committed: i64,
    /// End offset of the partition.
    pub end: i64,
    /// Lag at that time.
    pub lag: i64,
}

/// Per (group, topic, partition) history across collections. Nested maps so that recording a
/// known partition allocates nothing; partitions not recorded in a round are dropped by
/// [`History::end_round`].
#[derive(Debug, Default)]
pub struct History {
    round: u64,
    series: HashMap<String, HashMap<String, HashMap<i32, Track>>>,
}

#[derive(Debug, Default)]
struct Track {
    seen: u64,
    points: VecDeque<Point>,
}

impl History {
    /// Starts a collection.
    pub fn begin_round(&mut self) {
        self.round += 1;
    }

    /// Records a point and returns the window (oldest first).
    pub fn record(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        p: Point,
    ) -> &VecDeque<Point> {
        if !self.series.contains_key(group) {
            self.series.insert(group.to_string(), HashMap::new());
        }
        let topics = self
            .series
            .get_mut(group)
            .unwrap_or_else(|| unreachable!("inserted above"));
        if !topics.contains_key(topic) {
            topics.insert(topic.to_string(), HashMap::new());
        }
        let parts = topics
            .get_mut(topic)
            .unwrap_or_else(|| unreachable!("inserted above"));
        let track = parts.entry(partition).or_default();
        track.seen = self.round;
        let w = &mut track.points;
        if w.back().is_some_and(|last| p.committed < last.committed) {
            // An offset reset (rewind) starts a fresh window after this point is judged; keep
            // the previous point so the rewind is visible once.
            while w.len() > 1 {
                w.pop_front();
            }
        }
        w.push_back(p);
        while w.len() > WINDOW {
            w.pop_front();
        }
        w
    }

    /// Forgets partitions not recorded since [`History::begin_round`].
    pub fn end_round(&mut self) {
        let round = self.round;
        for topics in self.series.values_mut() {
            for parts in topics.values_mut() {
                parts.retain(|_, t| t.seen == round);
            }
            topics.retain(|_, parts| !parts.is_empty());
        }
        self.series.retain(|_, topics| !topics.is_empty());
    }

    /// Number of partitions tracked.
    pub fn len(&self) -> usize {
        self.series
            .values()
            .flat_map(|t| t.values())
            .map(HashMap::len)
            .sum()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// Messages consumed per second over the window (committed offset progress), or None with
/// fewer than two points or no time between them.
pub fn consume_rate(window: &VecDeque<Point>) -> Option<f64> {
    let (first, last) = (window.front()?, window.back()?);
    let dt = last.t - first.t;
    if window.len() < 2 || dt <= 0.0 {
        return None;
    }
    Some(((last.committed - first.committed).max(0)) as f64 / dt)
}

/// Seconds to drain `lag` at `rate` messages/s: 0 without lag, +Inf when nothing is consumed.
pub fn drain_seconds(lag: i64, rate: f64) -> f64 {
    if lag <= 0 {
        0.0
    } else if rate <= 0.0 {
        f64::INFINITY
    } else {
        lag as f64 / rate
    }
}

/// Status of a partition or group, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Keeping up (lag reached 0 in the window, or lag is not growing).
    Ok,
    /// Consuming, but lag grew in every interval of the window.
    Warning,
    /// The committed offset went backwards (offset reset / rewind).
    Error,
    /// Members are present but the committed offset has not moved while lag stays or grows.
    Stalled,
    /// No members and the committed offset has not moved while there is lag.
    Stopped,
}

impl Status {
    /// All statuses, for zero-filling.
    pub const ALL: [Status; 5] = [
        Status::Ok,
        Status::Warning,
        Status::Error,
        Status::Stalled,
        Status::Stopped,
    ];

    /// The `status` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Error => "error",
            Status::Stalled => "stalled",
            Status::Stopped => "stopped",
        }
    }
}

/// Burrow's rules, adapted to what a poller sees (see docs/collectors-kafka.md):
/// 1. any zero lag in the window: ok;
/// 2. committed offset went backwards between two points: error (rewind);
/// 3. committed offset unchanged over the whole window and lag constant or growing: stopped
///    when the group has no members, stalled when it has;
/// 4. committed offset moving but lag grew in every interval: warning;
/// 5. otherwise ok. A window of one point is ok (not enough data).
pub fn partition_status(window: &VecDeque<Point>, has_members: bool) -> Status {
    if window.iter().any(|p| p.lag == 0) {
        return Status::Ok;
    }
    if window.len() < 2 {
        return Status::Ok;
    }
    let pairs: Vec<(&Point, &Point)> = window.iter().zip(window.iter().skip(1)).collect();
    if pairs.iter().any(|(a, b)| b.committed < a.committed) {
        return Status::Error;
    }
    let (first, last) = (window[0], window[window.len() - 1]);
    if first.committed == last.committed && last.lag >= first.lag {
        return if has_members {
            Status::Stalled
        } else {
            Status::Stopped
        };
    }
    if pairs.iter().all(|(a, b)| b.lag > a.lag) {
        return Status::Warning;
    }
    Status::Ok
}

/// A group's status: the worst of its partitions (ok with none).
pub fn group_status(partitions: impl IntoIterator<Item = Status>) -> Status {
    partitions.into_iter().max().unwrap_or(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(points: &[(i64, i64)]) -> VecDeque<Point> {
        points
            .iter()
            .enumerate()
            .map(|(i, &(committed, end))| Point {
                t: i as f64 * 10.0,
                committed,
                end,
                lag: (end - committed).max(0),
            })
            .collect()
    }

    #[test]
    fn lag_is_clamped_and_flags_missing_commits() {
        assert_eq!(
            partition_lag(Some(3), 0, 10),
            PartitionLag {
                lag: 7,
                committed: true
            }
        );
        // committed ahead of a (quirky) end offset: 0, never negative
        assert_eq!(partition_lag(Some(12), 0, 10).lag, 0);
        // committed below the oldest offset (retention deleted it): count from oldest
        assert_eq!(partition_lag(Some(1), 5, 10).lag, 5);
        assert_eq!(
            partition_lag(None, 2, 10),
            PartitionLag {
                lag: 8,
                committed: false
            }
        );
        assert_eq!(
            partition_lag(Some(-1), 2, 10),
            PartitionLag {
                lag: 8,
                committed: false
            }
        );
    }

    #[test]
    fn rate_and_drain_time() {
        let w = window(&[(0, 100), (50, 120), (100, 130)]);
        assert_eq!(consume_rate(&w), Some(5.0));
        assert_eq!(drain_seconds(30, 5.0), 6.0);
        assert_eq!(drain_seconds(0, 0.0), 0.0);
        assert!(drain_seconds(3, 0.0).is_infinite());
        assert_eq!(consume_rate(&window(&[(0, 1)])), None);
    }

    #[test]
    fn burrow_rules() {
        // zero lag somewhere in the window
        assert_eq!(
            partition_status(&window(&[(5, 10), (10, 10), (10, 12)]), true),
            Status::Ok
        );
        // not moving, lag growing: stalled with members, stopped without
        let stuck = window(&[(5, 10), (5, 12), (5, 15)]);
        assert_eq!(partition_status(&stuck, true), Status::Stalled);
        assert_eq!(partition_status(&stuck, false), Status::Stopped);
        // moving but falling behind every interval
        assert_eq!(
            partition_status(&window(&[(5, 10), (7, 14), (9, 20)]), true),
            Status::Warning
        );
        // moving and catching up
        assert_eq!(
            partition_status(&window(&[(5, 20), (10, 21), (15, 22)]), true),
            Status::Ok
        );
        // rewind
        assert_eq!(
            partition_status(&window(&[(10, 20), (2, 20)]), true),
            Status::Error
        );
        // one point: not enough data
        assert_eq!(partition_status(&window(&[(0, 20)]), false), Status::Ok);
        assert_eq!(
            group_status([Status::Ok, Status::Stopped, Status::Warning]),
            Status::Stopped
        );
        assert_eq!(group_status([]), Status::Ok);
    }

    #[test]
    fn history_keeps_a_window_and_restarts_after_rewind() {
        let mut h = History::default();
        h.begin_round();
        for i in 0..15 {
            let p = Point {
                t: i as f64,
                committed: i,
                end: 100,
                lag: 100 - i,
            };
            h.record("g", "t", 0, p);
        }
        let w = h.record(
            "g",
            "t",
            0,
            Point {
                t: 20.0,
                committed: 20,
                end: 100,
                lag: 80,
            },
        );
        assert_eq!(w.len(), WINDOW);
        let w = h.record(
            "g",
            "t",
            0,
            Point {
                t: 21.0,
                committed: 0,
                end: 100,
                lag: 100,
            },
        );
        assert_eq!(w.len(), 2);
        assert_eq!(partition_status(w, true), Status::Error);
        assert_eq!(h.len(), 1);
        h.begin_round();
        h.record(
            "g",
            "u",
            1,
            Point {
                t: 30.0,
                committed: 0,
                end: 1,
                lag: 1,
            },
        );
        h.end_round();
        assert_eq!(
            h.len(),
            1,
            "only the partition seen in the last round is kept"
        );
        h.begin_round();
        h.end_round();
        assert!(h.is_empty());
    }
}
