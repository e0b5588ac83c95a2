//! Calendar periods (week, month, quarter) in an IANA time zone, as UTC milliseconds. Boundaries
//! are local midnights, so a month in Europe/Berlin that spans a DST change is 1 hour shorter or
//! longer than 31 x 24 h; chrono-tz resolves it.

use chrono::{Datelike, Days, LocalResult, Months, NaiveDate, TimeZone};
use chrono_tz::Tz;

use super::spec::CalendarUnit;

/// The period of `unit` in `tz` that contains `t_ms`: (start_ms, end_ms), end exclusive.
pub fn period_containing(unit: CalendarUnit, tz: Tz, t_ms: i64) -> (i64, i64) {
    let local = match tz.timestamp_millis_opt(t_ms) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.date_naive(),
        LocalResult::None => chrono::DateTime::from_timestamp_millis(t_ms)
            .map(|d| d.date_naive())
            .unwrap_or_default(),
    };
    let start = match unit {
        CalendarUnit::Week => local - Days::new(u64::from(local.weekday().num_days_from_monday())),
        CalendarUnit::Month => local.with_day(1).unwrap_or(local),
        CalendarUnit::Quarter => {
            let month0 = (local.month0() / 3) * 3;
            NaiveDate::from_ymd_opt(local.year(), month0 + 1, 1).unwrap_or(local)
        }
    };
    let end = match unit {
        CalendarUnit::Week => start + Days::new(7),
        CalendarUnit::Month => start + Months::new(1),
        CalendarUnit::Quarter => start + Months::new(3),
    };
    (local_midnight_ms(tz, start), local_midnight_ms(tz, end))
}

/// UTC milliseconds of 00:00 local time on `date` (or the first instant after it, where a DST
/// change skips midnight).
fn local_midnight_ms(tz: Tz, date: NaiveDate) -> i64 {
    let mut naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..4 {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => return t.timestamp_millis(),
            LocalResult::None => naive += chrono::Duration::minutes(30),
        }
    }
    naive.and_utc().timestamp_millis()
}

/// A short human name of a period, e.g. `2026-11` or `2026-W47` or `2026-Q4`.
pub fn period_name(unit: CalendarUnit, tz: Tz, start_ms: i64) -> String {
    let Some(t) = tz.timestamp_millis_opt(start_ms + 1).earliest() else {
        return start_ms.to_string();
    };
    match unit {
        CalendarUnit::Week => format!("{}-W{:02}", t.iso_week().year(), t.iso_week().week()),
        CalendarUnit::Month => format!("{}-{:02}", t.year(), t.month()),
        CalendarUnit::Quarter => format!("{}-Q{}", t.year(), t.month0() / 3 + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .expect("time")
            .timestamp_millis()
    }

    #[test]
    fn month_in_utc_and_berlin_across_dst() {
        let (s, e) = period_containing(CalendarUnit::Month, Tz::UTC, ms("2026-11-22T10:00:00Z"));
        assert_eq!(
            (s, e),
            (ms("2026-11-01T00:00:00Z"), ms("2026-12-01T00:00:00Z"))
        );
        // October 2026 in Berlin: starts at CEST (+02), ends at CET (+01) after the change on
        // the 25th, so it lasts 31 days and 1 hour.
        let berlin: Tz = "Europe/Berlin".parse().expect("tz");
        let (s, e) = period_containing(CalendarUnit::Month, berlin, ms("2026-10-15T12:00:00Z"));
        assert_eq!(s, ms("2026-10-01T00:00:00+02:00"));
        assert_eq!(e, ms("2026-11-01T00:00:00+01:00"));
        assert_eq!(e - s, (31 * 24 + 1) * 3_600_000);
        // March 2026 in Berlin is one hour short.
        let (s, e) = period_containing(CalendarUnit::Month, berlin, ms("2026-03-29T12:00:00Z"));
        assert_eq!(e - s, (31 * 24 - 1) * 3_600_000);
    }

    #[test]
    fn boundary_instant_belongs_to_the_new_period() {
        let berlin: Tz = "Europe/Berlin".parse().expect("tz");
        let b = ms("2026-11-01T00:00:00+01:00");
        assert_eq!(period_containing(CalendarUnit::Month, berlin, b).0, b);
        assert_eq!(period_containing(CalendarUnit::Month, berlin, b - 1).1, b);
        // 23:30 UTC on Oct 31 is already November in Berlin.
        assert_eq!(
            period_containing(CalendarUnit::Month, berlin, ms("2026-10-31T23:30:00Z")).0,
            b
        );
    }

    #[test]
    fn weeks_start_monday_and_quarters() {
        let ny: Tz = "America/New_York".parse().expect("tz");
        // Sunday 2026-11-22 20:00 in New York (Monday 01:00 UTC).
        let (s, e) = period_containing(CalendarUnit::Week, ny, ms("2026-11-23T01:00:00Z"));
        assert_eq!(s, ms("2026-11-16T00:00:00-05:00"));
        assert_eq!(e, ms("2026-11-23T00:00:00-05:00"));
        let (s, e) = period_containing(CalendarUnit::Quarter, Tz::UTC, ms("2026-11-22T00:00:00Z"));
        assert_eq!(
            (s, e),
            (ms("2026-10-01T00:00:00Z"), ms("2027-01-01T00:00:00Z"))
        );
        assert_eq!(period_name(CalendarUnit::Quarter, Tz::UTC, s), "2026-Q4");
        assert_eq!(period_name(CalendarUnit::Month, Tz::UTC, s), "2026-10");
        // A week containing the US DST end (Nov 1 2026) is 7 days + 1 hour long.
        let (s, e) = period_containing(CalendarUnit::Week, ny, ms("2026-11-01T12:00:00Z"));
        assert_eq!(e - s, (7 * 24 + 1) * 3_600_000);
    }
}
