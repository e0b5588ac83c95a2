//! The `type: kafka` collector. (Being written: see issue tracker.)

use std::path::Path;

use serde::Deserialize;

use super::Output;
use crate::config::Problem;

/// `collectors[] type: kafka`: the keys of this collector besides the common ones.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Environment variable holding the connection URL.
    pub url_env: Option<String>,
}

impl KafkaConfig {
    /// Semantic checks; `path` is e.g. `collectors[2]`.
    pub fn validate(&self, _path: &str, _base_dir: &Path, _out: &mut Vec<Problem>) {}

    /// Makes relative file paths relative to the config file's directory.
    pub fn resolve_paths(&mut self, _base_dir: &Path) {}
}

/// Why a kafka collection failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// Not written yet.
    #[error("the kafka collector is not available yet")]
    Unavailable,
}

/// A kafka collector and its connection.
pub struct Kafka {}

impl Kafka {
    /// Builds the collector; connects lazily on the first collection.
    pub fn new(_name: &str, _cfg: &KafkaConfig) -> Self {
        Self {}
    }

    /// One collection into `out`.
    pub async fn collect(&mut self, _out: &mut Output) -> Result<(), KafkaError> {
        Err(KafkaError::Unavailable)
    }

    /// Drops the connection.
    pub async fn reset(&mut self) {}
}
