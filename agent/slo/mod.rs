//! SLOs: specs from `rules/*.yaml` ([`spec`]), pure budget maths ([`budget`]), event buckets and
//! windows ([`window`]), calendar periods ([`calendar`]), the evaluation [`engine`], and the
//! [`manager`] that runs it every round and keeps its state in the ledger.

pub mod budget;
pub mod calendar;
pub mod engine;
pub mod manager;
pub mod openslo;
pub mod spec;
pub mod testing;
pub mod window;

pub use manager::SloManager;
