//! Reads of the ledger's SLO history for charts (error-budget burn-down, burn rates over time,
//! completed calendar periods).
//!
//! SKELETON (issue #11): the status page fills this in.
