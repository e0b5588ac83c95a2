//! SLOs: specs from `rules/*.yaml` ([`spec`]), pure budget maths ([`budget`]), event buckets and
//! windows ([`window`]), calendar periods ([`calendar`]).

pub mod budget;
pub mod calendar;
pub mod engine;
pub mod spec;
pub mod window;
