//! Vigil: an observability agent and SLO evaluator.
//!
//! # Layout
//!
//! - [`config`]: typed `vigil.yaml`, loading with every problem reported at once, reload.
//! - [`demo`]: the built-in demo service whose traffic the example SLOs watch.
//! - [`store`]: the durable ledger (SQLite or Postgres through sqlx).
//! - [`api`]: the HTTP surface (`/metrics`, `/healthz`, `/readyz`).
//! - [`daemon`]: `vigil run`, which wires the managers together and handles signals.
//!
//! Data flows one way: producers (the demo service today; scrape and the collectors as their
//! issues land) -> store -> SLO evaluation -> alerting -> notification, with the API reading
//! from the store. A module never reaches back up that chain.

pub mod alert;
pub mod api;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod dashboards;
pub mod demo;
pub mod healthcheck;
pub mod hpa;
pub mod notify;
pub mod scrape;
pub mod slo;
pub mod store;
