//! State: the durable [`ledger`] (SQLite or Postgres). The scrape issue adds the in-memory store
//! of recent series here, and the SLO engine its per-SLO event buckets.

pub mod ledger;
