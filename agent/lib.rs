//! Vigil: an observability agent and SLO evaluator.
//!
//! # Layout
//!
//! - [`config`]: typed `vigil.yaml`, loading with every problem reported at once, reload.
//! - [`demo`]: the built-in demo service whose traffic the example SLOs watch.
//! - [`scrape`]: targets and discovery (static, file_sd, Kubernetes), the scrape loop, the
//!   exposition parser.
//! - [`collect`]: the native Postgres, Redis and Kafka collectors.
//! - [`store`]: recent series, and the durable ledger (SQLite or Postgres through sqlx).
//! - [`slo`]: SLIs, error budgets and burn rates; [`alert`]: burn-rate alert rules;
//!   [`notify`]: routing, silences, inhibition and delivery through the outbox.
//! - [`api`]: the HTTP surface (`/metrics`, `/healthz`, `/readyz`, `/api/v1/*`, the status page);
//!   [`hpa`]: the Kubernetes external metrics API.
//! - [`dashboards`]: Grafana dashboards generated from the SLOs and collectors.
//! - [`leader`]: leader election among aggregator replicas (Postgres advisory lock); gates
//!   notifications, SLO period writes and the Grafana sync.
//! - [`daemon`]: `vigil run`, which wires the managers together and handles signals.
//!
//! Data flows one way: producers (scrape, the collectors, the demo service) -> store -> SLO
//! evaluation -> alerting -> notification, with the APIs reading from the store. A module never
//! reaches back up that chain.

pub mod alert;
pub mod api;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod dashboards;
pub mod demo;
pub mod healthcheck;
pub mod hpa;
pub mod leader;
pub mod notify;
pub mod scrape;
pub mod slo;
pub mod store;
