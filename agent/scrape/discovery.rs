//! Turns a job's static URLs and file_sd files into scrape targets: discovered labels
//! (`__address__`, `__scheme__`, `__metrics_path__`, `__param_<name>`, `__meta_filepath`, `job`,
//! group labels), then `relabel_configs`, then the final labels (`instance` defaults to the
//! address; labels starting with `__` are removed) and the URL to scrape.
//!
//! Targets from service discovery ([`super::kubernetes`]) arrive as label sets holding
//! `__address__` and `__meta_*` labels, and go through the same relabelling.
//!
//! file_sd files are in Prometheus' format (a list of `{targets: [...], labels: {...}}`, JSON or
//! YAML). A file that cannot be read or parsed keeps its last good content and is reported.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Deserialize;

use super::relabel::Relabeler;
use crate::config::scrape::JobConfig;
use crate::store::series::{LabelBuilder, LabelSet};

/// A target ready to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The job.
    pub job: String,
    /// The URL to scrape.
    pub url: String,
    /// Labels attached to every series of the target (`job`, `instance`, ...).
    pub labels: LabelSet,
    /// Labels before relabelling, for the targets API.
    pub discovered: LabelSet,
}

impl Target {
    /// A stable key: job, URL and labels.
    pub fn key(&self) -> String {
        format!("{}\u{1}{}\u{1}{}", self.job, self.url, self.labels)
    }
}

/// A target that relabelling dropped, for the targets API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedTarget {
    /// Labels before relabelling.
    pub discovered: LabelSet,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A group of targets from one file_sd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    /// The file it came from (`__meta_filepath`).
    pub file: PathBuf,
    /// `host:port` addresses.
    pub targets: Vec<String>,
    /// Labels of the group.
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct CachedFile {
    stamp: (Option<SystemTime>, u64),
    groups: Vec<TargetGroup>,
}

/// Reads file_sd files, re-parsing only those whose modification time or size changed.
#[derive(Debug, Default)]
pub struct FileSdCache {
    files: HashMap<PathBuf, CachedFile>,
    /// Problems of the last refresh (file, message), for logs and the API.
    pub errors: Vec<(PathBuf, String)>,
}

impl FileSdCache {
    /// Target groups of every file matching `patterns`: (file, targets, labels).
    pub fn read(&mut self, patterns: &[String]) -> Vec<TargetGroup> {
        let mut out = Vec::new();
        for pattern in patterns {
            let paths = match glob::glob(pattern) {
                Ok(p) => p.filter_map(Result::ok).collect::<Vec<_>>(),
                Err(e) => {
                    self.errors
                        .push((PathBuf::from(pattern), format!("bad glob: {e}")));
                    continue;
                }
            };
            for path in paths {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                let stamp = (meta.modified().ok(), meta.len());
                let fresh = self.files.get(&path).is_some_and(|c| c.stamp == stamp);
                if !fresh {
                    match parse_file(&path) {
                        Ok(groups) => {
                            self.files
                                .insert(path.clone(), CachedFile { stamp, groups });
                        }
                        Err(e) => {
                            // Keep the last good content; say why the new one is ignored.
                            self.errors.push((path.clone(), e));
                            if let Some(c) = self.files.get_mut(&path) {
                                c.stamp = stamp;
                            }
                        }
                    }
                }
                if let Some(c) = self.files.get(&path) {
                    out.extend(c.groups.iter().cloned());
                }
            }
        }
        out
    }
}

fn parse_file(path: &PathBuf) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let groups: Vec<FileGroup> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|e| format!("invalid file_sd JSON: {e}"))?
    } else {
        serde_yaml::from_str(&text).map_err(|e| format!("invalid file_sd YAML: {e}"))?
    };
    Ok(groups
        .into_iter()
        .map(|g| TargetGroup {
            file: path.clone(),
            targets: g.targets,
            labels: g.labels,
        })
        .collect())
}

/// Labels of one target found by service discovery: `__address__` and `__meta_*` labels.
pub type DiscoveredLabels = BTreeMap<String, String>;

/// Builds the targets of `job` from its static URLs and the given file_sd groups.
pub fn targets_of(
    job: &JobConfig,
    relabel: &Relabeler,
    file_groups: &[TargetGroup],
) -> (Vec<Target>, Vec<DroppedTarget>) {
    targets_with(job, relabel, file_groups, &[])
}

/// Builds the targets of `job` from its static URLs, file_sd groups and the targets of other
/// service discovery (`sd_targets`), relabelled by `relabel`.
pub fn targets_with(
    job: &JobConfig,
    relabel: &Relabeler,
    file_groups: &[TargetGroup],
    sd_targets: &[DiscoveredLabels],
) -> (Vec<Target>, Vec<DroppedTarget>) {
    let mut candidates: Vec<LabelBuilder> = Vec::new();
    for url in &job.urls {
        let Ok(u) = reqwest::Url::parse(url) else {
            continue;
        };
        let mut b = LabelBuilder::default();
        let host = u.host_str().unwrap_or_default();
        let address = match u.port_or_known_default() {
            Some(p) if host.contains(':') => format!("[{host}]:{p}"),
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        b.set("__address__".into(), address);
        b.set("__scheme__".into(), u.scheme().to_string());
        b.set("__metrics_path__".into(), u.path().to_string());
        for (k, v) in u.query_pairs() {
            b.set(format!("__param_{k}"), v.into_owned());
        }
        for (k, v) in &job.labels {
            b.set(k.clone(), v.clone());
        }
        b.set("job".into(), job.job.clone());
        candidates.push(b);
    }
    for TargetGroup {
        file: path,
        targets,
        labels,
    } in file_groups
    {
        for address in targets {
            let mut b = LabelBuilder::default();
            b.set("__address__".into(), address.clone());
            b.set("__scheme__".into(), job.scheme.clone());
            b.set("__metrics_path__".into(), job.metrics_path.clone());
            for (k, v) in &job.params {
                if let Some(first) = v.first() {
                    b.set(format!("__param_{k}"), first.clone());
                }
            }
            b.set("__meta_filepath".into(), path.display().to_string());
            b.set("job".into(), job.job.clone());
            for (k, v) in labels {
                b.set(k.clone(), v.clone());
            }
            candidates.push(b);
        }
    }
    for labels in sd_targets {
        let mut b = LabelBuilder::default();
        b.set("__scheme__".into(), job.scheme.clone());
        b.set("__metrics_path__".into(), job.metrics_path.clone());
        for (k, v) in &job.params {
            if let Some(first) = v.first() {
                b.set(format!("__param_{k}"), first.clone());
            }
        }
        b.set("job".into(), job.job.clone());
        for (k, v) in labels {
            b.set(k.clone(), v.clone());
        }
        candidates.push(b);
    }
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    for mut b in candidates {
        let discovered = b.clone().finish();
        if !relabel.apply(&mut b) || b.get("__address__").is_none_or(str::is_empty) {
            dropped.push(DroppedTarget { discovered });
            continue;
        }
        let address = b.get("__address__").unwrap_or_default().to_string();
        if b.get("instance").is_none() {
            b.set("instance".into(), address.clone());
        }
        let scheme = b.get("__scheme__").unwrap_or("http").to_string();
        let path = b.get("__metrics_path__").unwrap_or("/metrics").to_string();
        let mut url = format!("{scheme}://{address}{path}");
        let params: Vec<(String, String)> = b
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("__param_")
                    .map(|p| (p.to_string(), v.to_string()))
            })
            .collect();
        if !params.is_empty() {
            let query: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            url.push('?');
            url.push_str(&query.join("&"));
        }
        b.retain(|k| !k.starts_with("__"));
        out.push(Target {
            job: job.job.clone(),
            url,
            labels: b.finish(),
            discovered,
        });
    }
    (out, dropped)
}

/// Percent-encodes a query component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(yaml: &str) -> JobConfig {
        serde_yaml::from_str(yaml).expect("job yaml")
    }

    #[test]
    fn static_urls_give_prometheus_meta_labels() {
        let j = job(
            "{job: api, urls: ['http://10.0.0.1:8080/m?module=x&a=b%20c', 'https://h/metrics'], labels: {team: web}}",
        );
        let (t, dropped) = targets_of(&j, &Relabeler::default(), &[]);
        assert!(dropped.is_empty());
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].url, "http://10.0.0.1:8080/m?a=b%20c&module=x");
        assert_eq!(
            t[0].labels.to_string(),
            "{instance=\"10.0.0.1:8080\",job=\"api\",team=\"web\"}"
        );
        assert_eq!(t[0].discovered.get("__param_module"), Some("x"));
        assert_eq!(t[1].url, "https://h:443/metrics");
    }

    #[test]
    fn file_sd_with_relabelling_and_drops() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"targets": ["db1:9187", "db2:9187"], "labels": {"env": "prod"}}]"#,
        )
        .expect("write");
        std::fs::write(
            dir.path().join("b.yaml"),
            "- targets: [cache:9121]\n  labels: {env: dev}\n",
        )
        .expect("write");
        let pattern = format!("{}/*.json", dir.path().display());
        let pattern2 = format!("{}/*.yaml", dir.path().display());
        let j = job(&format!(
            "{{job: db, file_sd_configs: [{{files: ['{pattern}', '{pattern2}']}}], metrics_path: /probe, params: {{target: [x]}},
              relabel_configs: [{{source_labels: [env], regex: dev, action: drop}},
                                {{source_labels: [__address__], regex: '(.*):.*', target_label: instance}}]}}"
        ));
        let relabel = Relabeler::compile(&j.relabel_configs).expect("compile");
        let mut cache = FileSdCache::default();
        let groups = cache.read(&j.file_sd_configs[0].files);
        let (t, dropped) = targets_of(&j, &relabel, &groups);
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(dropped.len(), 1);
        assert_eq!(t[0].url, "http://db1:9187/probe?target=x");
        assert_eq!(
            t[0].labels.to_string(),
            "{env=\"prod\",instance=\"db1\",job=\"db\"}"
        );
        assert!(
            t[0].discovered
                .get("__meta_filepath")
                .is_some_and(|p| p.ends_with("a.json"))
        );

        // A broken edit keeps the last good content and is reported.
        std::fs::write(dir.path().join("a.json"), "[{").expect("write");
        let groups = cache.read(&j.file_sd_configs[0].files);
        assert_eq!(targets_of(&j, &relabel, &groups).0.len(), 2);
        assert!(
            cache
                .errors
                .iter()
                .any(|(p, e)| p.ends_with("a.json") && e.contains("invalid file_sd JSON"))
        );
    }
}
