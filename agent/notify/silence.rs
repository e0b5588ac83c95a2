//! Silences in Alertmanager's model: matchers (`=`, `!=`, `=~`, `!~`), a period
//! (`startsAt`..`endsAt`), `createdBy` and `comment`; states pending, active and expired.
//! Kept in memory by the dispatcher and persisted in the ledger's `silences` table (loaded at
//! start). The JSON shapes are those of Alertmanager's v2 API, used by `/api/v1/silences` and
//! `/api/v2/silences`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use super::matcher::{MatchOp, Matcher};

/// How long an expired silence is kept (Alertmanager's default `--data.retention`).
pub const RETENTION_MS: i64 = 5 * 24 * 3600 * 1000;

/// State of a silence at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts in the future.
    Pending,
    /// Mutes matching alerts now.
    Active,
    /// Ended (or expired by hand).
    Expired,
}

impl SilenceState {
    /// The name used in the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
        }
    }
}

/// One silence.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// UUID-like id.
    pub id: String,
    /// All must match for an alert to be muted.
    pub matchers: Vec<Matcher>,
    /// Start, ms since the epoch.
    pub starts_at_ms: i64,
    /// End (exclusive), ms since the epoch.
    pub ends_at_ms: i64,
    /// Author.
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// Last change, ms since the epoch.
    pub updated_at_ms: i64,
}

impl Silence {
    /// State at `now_ms`.
    pub fn state(&self, now_ms: i64) -> SilenceState {
        if now_ms >= self.ends_at_ms {
            SilenceState::Expired
        } else if now_ms < self.starts_at_ms {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Whether it mutes an alert with `labels` at `now_ms`.
    pub fn mutes(&self, labels: &BTreeMap<String, String>, now_ms: i64) -> bool {
        self.state(now_ms) == SilenceState::Active
            && super::matcher::all_match(&self.matchers, labels)
    }

    /// The JSON of Alertmanager's `gettableSilence`.
    pub fn to_json(&self, now_ms: i64) -> GettableSilence {
        GettableSilence {
            id: self.id.clone(),
            status: SilenceStatus {
                state: self.state(now_ms),
            },
            updated_at: rfc3339(self.updated_at_ms),
            matchers: self.matchers.iter().map(ApiMatcher::from).collect(),
            starts_at: rfc3339(self.starts_at_ms),
            ends_at: rfc3339(self.ends_at_ms),
            created_by: self.created_by.clone(),
            comment: self.comment.clone(),
        }
    }
}

/// A matcher in Alertmanager's API JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    /// Label name.
    pub name: String,
    /// Value or regex.
    pub value: String,
    /// Regex match.
    pub is_regex: bool,
    /// Positive match (`=`/`=~`); defaults to true.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl From<&Matcher> for ApiMatcher {
    fn from(m: &Matcher) -> Self {
        Self {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: m.op.is_regex(),
            is_equal: m.op.is_equal(),
        }
    }
}

/// `status` of a gettable silence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilenceStatus {
    /// `active`, `pending` or `expired`.
    pub state: SilenceState,
}

/// Alertmanager's `gettableSilence`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    /// Id.
    pub id: String,
    /// State.
    pub status: SilenceStatus,
    /// Last change.
    pub updated_at: String,
    /// Matchers.
    pub matchers: Vec<ApiMatcher>,
    /// Start.
    pub starts_at: String,
    /// End.
    pub ends_at: String,
    /// Author.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// Alertmanager's `postableSilence`: a new silence, or a change when `id` is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    /// Id of the silence to change; absent for a new one.
    #[serde(default)]
    pub id: Option<String>,
    /// Matchers (at least one, and not all matching the empty value).
    pub matchers: Vec<ApiMatcher>,
    /// Start (RFC 3339); a past start becomes now.
    pub starts_at: String,
    /// End (RFC 3339), after the start and in the future.
    pub ends_at: String,
    /// Author.
    #[serde(default)]
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
}

impl PostableSilence {
    /// Validates and converts; the error says what is wrong (HTTP 400).
    pub fn into_silence(self, id: String, now_ms: i64) -> Result<Silence, String> {
        if self.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        let mut matchers = Vec::with_capacity(self.matchers.len());
        for m in &self.matchers {
            if let Err(e) = crate::config::check_label_name(&m.name) {
                if m.name != "__name__" {
                    return Err(format!("invalid matcher: {e}"));
                }
            }
            let op = MatchOp::from_flags(m.is_regex, m.is_equal);
            matchers.push(
                Matcher::new(&m.name, op, &m.value).map_err(|e| format!("invalid matcher: {e}"))?,
            );
        }
        if matchers.iter().all(|m| m.matches_value("")) {
            return Err(
                "at least one matcher must not match the empty string (else the silence would mute every alert)"
                    .into(),
            );
        }
        let starts = parse_time(&self.starts_at, "startsAt")?;
        let ends = parse_time(&self.ends_at, "endsAt")?;
        if ends <= starts {
            return Err("endsAt must be after startsAt".into());
        }
        if ends <= now_ms {
            return Err("endsAt is in the past; a silence must end in the future".into());
        }
        if self.created_by.trim().is_empty() {
            return Err("createdBy is missing; say who creates the silence".into());
        }
        if self.comment.trim().is_empty() {
            return Err("comment is missing; say why the silence is needed".into());
        }
        Ok(Silence {
            id,
            matchers,
            starts_at_ms: starts.max(now_ms),
            ends_at_ms: ends,
            created_by: self.created_by,
            comment: self.comment,
            updated_at_ms: now_ms,
        })
    }
}

fn parse_time(text: &str, key: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{key} {text:?} is not an RFC 3339 time: {e}"))
}

/// RFC 3339 with milliseconds in UTC, as Alertmanager writes times.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00.000Z".to_string())
}

/// A new random id in the UUID v4 text format.
pub fn new_id() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// Loads every silence kept in the ledger, deleting those expired longer than [`RETENTION_MS`].
pub async fn load(pool: &AnyPool, now_ms: i64) -> Result<Vec<Silence>, sqlx::Error> {
    sqlx::query("DELETE FROM silences WHERE ends_at_ms < $1")
        .bind(now_ms - RETENTION_MS)
        .execute(pool)
        .await?;
    let rows = sqlx::query(
        "SELECT id, matchers, starts_at_ms, ends_at_ms, created_by, comment, updated_at_ms FROM silences ORDER BY starts_at_ms, id",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get(0)?;
        let text: String = row.try_get(1)?;
        let api: Vec<ApiMatcher> = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(silence = %id, error = %e, "skipping a silence with unreadable matchers");
                continue;
            }
        };
        let matchers: Vec<Matcher> = api
            .iter()
            .filter_map(|m| {
                Matcher::new(
                    &m.name,
                    MatchOp::from_flags(m.is_regex, m.is_equal),
                    &m.value,
                )
                .ok()
            })
            .collect();
        if matchers.len() != api.len() {
            tracing::warn!(silence = %id, "skipping a silence with an invalid matcher");
            continue;
        }
        out.push(Silence {
            id,
            matchers,
            starts_at_ms: row.try_get(2)?,
            ends_at_ms: row.try_get(3)?,
            created_by: row.try_get(4)?,
            comment: row.try_get(5)?,
            updated_at_ms: row.try_get(6)?,
        });
    }
    Ok(out)
}

/// Inserts or replaces a silence.
pub async fn store(pool: &AnyPool, s: &Silence) -> Result<(), sqlx::Error> {
    let api: Vec<ApiMatcher> = s.matchers.iter().map(ApiMatcher::from).collect();
    let matchers = serde_json::to_string(&api).unwrap_or_else(|_| "[]".into());
    sqlx::query(
        "INSERT INTO silences (id, matchers, starts_at_ms, ends_at_ms, created_by, comment, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, starts_at_ms = excluded.starts_at_ms, \
         ends_at_ms = excluded.ends_at_ms, created_by = excluded.created_by, comment = excluded.comment, \
         updated_at_ms = excluded.updated_at_ms",
    )
    .bind(&s.id)
    .bind(matchers)
    .bind(s.starts_at_ms)
    .bind(s.ends_at_ms)
    .bind(&s.created_by)
    .bind(&s.comment)
    .bind(s.updated_at_ms)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(json: &str) -> PostableSilence {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn validates_like_alertmanager() {
        let now = 1_800_000_000_000;
        let ok = post(
            r#"{"matchers":[{"name":"alertname","value":"X","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2030-01-01T00:00:00.000Z","createdBy":"me","comment":"why"}"#,
        )
        .into_silence("id".into(), now);
        let s = ok.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.starts_at_ms, now, "a past start becomes now");
        assert_eq!(s.state(now), SilenceState::Active);
        assert_eq!(s.state(s.ends_at_ms), SilenceState::Expired);
        for (json, want) in [
            (
                r#"{"matchers":[],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2030-01-01T00:00:00Z","createdBy":"me","comment":"c"}"#,
                "at least one matcher",
            ),
            (
                r#"{"matchers":[{"name":"a","value":".*","isRegex":true}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2030-01-01T00:00:00Z","createdBy":"me","comment":"c"}"#,
                "must not match the empty string",
            ),
            (
                r#"{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2021-01-01T00:00:00Z","createdBy":"me","comment":"c"}"#,
                "in the past",
            ),
            (
                r#"{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2030-01-01T00:00:00Z","endsAt":"2029-01-01T00:00:00Z","createdBy":"me","comment":"c"}"#,
                "after startsAt",
            ),
            (
                r#"{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2030-01-01T00:00:00Z","comment":"c"}"#,
                "createdBy is missing",
            ),
            (
                r#"{"matchers":[{"name":"a","value":"(","isRegex":true}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2030-01-01T00:00:00Z","createdBy":"me","comment":"c"}"#,
                "not a valid regex",
            ),
        ] {
            let e = post(json)
                .into_silence("id".into(), now)
                .err()
                .unwrap_or_default();
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn ids_look_like_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(new_id(), id);
    }
}
