//! Relabelling with Prometheus' semantics, for targets (`relabel_configs`) and for scraped
//! series (`metric_relabel_configs`). Regexes are anchored; `hashmod` uses the same md5-based
//! hash as Prometheus so that sharding by `hashmod` agrees with an existing Prometheus setup.

use md5::{Digest, Md5};
use regex::Regex;

use crate::config::scrape::{RelabelAction, RelabelConfig, anchored};
use crate::store::series::LabelBuilder;

struct Step {
    cfg: RelabelConfig,
    re: Regex,
}

/// A compiled list of relabelling steps.
#[derive(Default)]
pub struct Relabeler {
    steps: Vec<Step>,
}

impl std::fmt::Debug for Relabeler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Relabeler({} steps)", self.steps.len())
    }
}

impl Relabeler {
    /// Compiles the steps (config validation has already checked the regexes).
    pub fn compile(cfgs: &[RelabelConfig]) -> Result<Self, regex::Error> {
        let steps = cfgs
            .iter()
            .map(|c| {
                Ok(Step {
                    cfg: c.clone(),
                    re: Regex::new(&anchored(&c.regex))?,
                })
            })
            .collect::<Result<_, regex::Error>>()?;
        Ok(Self { steps })
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Applies every step to `labels`; false means the target or series is dropped.
    pub fn apply(&self, labels: &mut LabelBuilder) -> bool {
        self.steps.iter().all(|s| apply_step(s, labels))
    }
}

fn joined(labels: &LabelBuilder, cfg: &RelabelConfig) -> String {
    let mut out = String::new();
    for (i, name) in cfg.source_labels.iter().enumerate() {
        if i > 0 {
            out.push_str(&cfg.separator);
        }
        out.push_str(labels.get(name).unwrap_or(""));
    }
    out
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn apply_step(step: &Step, labels: &mut LabelBuilder) -> bool {
    let cfg = &step.cfg;
    let target = cfg.target_label.as_deref().unwrap_or("");
    match cfg.action {
        RelabelAction::Replace => {
            let val = joined(labels, cfg);
            if let Some(caps) = step.re.captures(&val) {
                let mut name = String::new();
                caps.expand(target, &mut name);
                let mut value = String::new();
                caps.expand(&cfg.replacement, &mut value);
                if valid_label_name(&name) {
                    labels.set(name, value);
                }
            }
            true
        }
        RelabelAction::Keep => step.re.is_match(&joined(labels, cfg)),
        RelabelAction::Drop => !step.re.is_match(&joined(labels, cfg)),
        RelabelAction::Keepequal => joined(labels, cfg) == labels.get(target).unwrap_or(""),
        RelabelAction::Dropequal => joined(labels, cfg) != labels.get(target).unwrap_or(""),
        RelabelAction::Hashmod => {
            let hash = Md5::digest(joined(labels, cfg).as_bytes());
            let mut last8 = [0u8; 8];
            last8.copy_from_slice(&hash[8..16]);
            let m = u64::from_be_bytes(last8) % cfg.modulus.unwrap_or(1).max(1);
            labels.set(target.to_string(), m.to_string());
            true
        }
        RelabelAction::Lowercase => {
            let v = joined(labels, cfg).to_lowercase();
            labels.set(target.to_string(), v);
            true
        }
        RelabelAction::Uppercase => {
            let v = joined(labels, cfg).to_uppercase();
            labels.set(target.to_string(), v);
            true
        }
        RelabelAction::Labelmap => {
            let mapped: Vec<(String, String)> = labels
                .iter()
                .filter_map(|(k, v)| {
                    let caps = step.re.captures(k)?;
                    let mut name = String::new();
                    caps.expand(&cfg.replacement, &mut name);
                    Some((name, v.to_string()))
                })
                .collect();
            for (k, v) in mapped {
                if valid_label_name(&k) {
                    labels.set(k, v);
                }
            }
            true
        }
        RelabelAction::Labeldrop => {
            labels.retain(|k| !step.re.is_match(k));
            true
        }
        RelabelAction::Labelkeep => {
            labels.retain(|k| step.re.is_match(k));
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::series::LabelSet;

    fn rc(yaml: &str) -> RelabelConfig {
        serde_yaml::from_str(yaml).expect("relabel yaml")
    }

    fn run(cfgs: &[&str], labels: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        let r =
            Relabeler::compile(&cfgs.iter().map(|c| rc(c)).collect::<Vec<_>>()).expect("compile");
        let mut b = LabelSet::from_pairs(labels.iter().copied()).to_builder();
        r.apply(&mut b).then(|| {
            b.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
    }

    fn pairs(p: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        let mut v: Vec<(String, String)> = p
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        Some(v)
    }

    #[test]
    fn replace_with_groups_and_target_expansion() {
        let got = run(
            &[
                "{source_labels: [__address__], regex: '(.+):(\\d+)', target_label: host, replacement: '$1'}",
                "{source_labels: [a, b], separator: '_', regex: '(.*)', target_label: '${1}_x', replacement: 'v'}",
                // An expanded target that is not a valid label name is skipped, as in Prometheus.
                "{source_labels: [a, b], separator: '-', regex: '(.*)', target_label: '${1}_y', replacement: 'w'}",
            ],
            &[("__address__", "db1:5432"), ("a", "p"), ("b", "q")],
        );
        assert_eq!(
            got,
            pairs(&[
                ("__address__", "db1:5432"),
                ("a", "p"),
                ("b", "q"),
                ("host", "db1"),
                ("p_q_x", "v")
            ])
        );
    }

    #[test]
    fn replace_without_match_changes_nothing_and_empty_result_deletes() {
        let got = run(
            &["{source_labels: [a], regex: 'x', target_label: b, replacement: 'y'}"],
            &[("a", "z"), ("b", "keep")],
        );
        assert_eq!(got, pairs(&[("a", "z"), ("b", "keep")]));
        let got = run(
            &["{source_labels: [missing], target_label: b}"],
            &[("a", "z"), ("b", "gone")],
        );
        assert_eq!(got, pairs(&[("a", "z")]));
    }

    #[test]
    fn keep_drop_and_equal_variants() {
        let l = [
            ("__name__", "go_gc_duration_seconds"),
            ("job", "x"),
            ("other", "x"),
        ];
        assert_eq!(
            run(
                &["{source_labels: [__name__], regex: 'go_.*', action: drop}"],
                &l
            ),
            None
        );
        assert!(
            run(
                &["{source_labels: [__name__], regex: 'go_.*', action: keep}"],
                &l
            )
            .is_some()
        );
        assert_eq!(
            run(
                &["{source_labels: [__name__], regex: 'go', action: keep}"],
                &l
            ),
            None,
            "anchored"
        );
        assert!(
            run(
                &["{source_labels: [job], target_label: other, action: keepequal}"],
                &l
            )
            .is_some()
        );
        assert_eq!(
            run(
                &["{source_labels: [job], target_label: other, action: dropequal}"],
                &l
            ),
            None
        );
    }

    #[test]
    fn labelmap_labeldrop_labelkeep_case() {
        let l = [
            ("__meta_kubernetes_pod_label_app", "web"),
            ("__meta_x", "1"),
            ("job", "j"),
        ];
        let got = run(
            &[
                "{regex: '__meta_kubernetes_pod_label_(.+)', action: labelmap}",
                "{regex: '__meta_.*', action: labeldrop}",
            ],
            &l,
        );
        assert_eq!(got, pairs(&[("app", "web"), ("job", "j")]));
        let got = run(
            &[
                "{regex: 'job', action: labelkeep}",
                "{source_labels: [job], target_label: up, action: uppercase}",
            ],
            &l,
        );
        assert_eq!(got, pairs(&[("job", "j"), ("up", "J")]));
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Values computed with Prometheus' relabel.Process (md5, last 8 bytes big-endian).
        let got = run(
            &["{source_labels: [__address__], modulus: 8, target_label: shard, action: hashmod}"],
            &[("__address__", "foo")],
        );
        let shard = got.and_then(|v| v.into_iter().find(|(k, _)| k == "shard").map(|(_, v)| v));
        // md5("foo") = acbd18db4cc2f85cedef654fccc4a4d8; last 8 bytes 0xedef654fccc4a4d8 % 8 = 0.
        assert_eq!(shard.as_deref(), Some("0"));
        let got = run(
            &["{source_labels: [a], modulus: 1000, target_label: s, action: hashmod}"],
            &[("a", "bar")],
        );
        // md5("bar") = 37b51d194a7513e45b56f6524f2d51f2; 0x5b56f6524f2d51f2 % 1000 = 994.
        let s = got.and_then(|v| v.into_iter().find(|(k, _)| k == "s").map(|(_, v)| v));
        assert_eq!(
            s.as_deref(),
            Some(&*(0x5b56f6524f2d51f2u64 % 1000).to_string())
        );
    }
}
