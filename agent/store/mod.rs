//! State. [`series`]: the latest samples of every scrape target and collector, in memory;
//! [`selector`]: PromQL series selectors over them; [`ledger`]: the durable SQL ledger (SQLite or
//! Postgres). The SLO engine adds its per-SLO event buckets here.

pub mod history;
pub mod ledger;
pub mod selector;
pub mod series;
