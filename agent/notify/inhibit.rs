//! Inhibit rules as Alertmanager applies them: a target alert (matching `target_matchers`) is
//! muted while a firing source alert (matching `source_matchers`) has the same values for the
//! `equal` labels (a missing label counts as empty). When the target matches the source side
//! too, sources that also match the target side do not count, so an alert never inhibits
//! itself or its peers. Used by the dispatcher at every flush and by the API.

use std::collections::{BTreeMap, HashMap};

use super::matcher::all_match;
use crate::alert::{Alert, AlertState};
use crate::notify::config::InhibitRuleConfig;

/// The inhibitions in force for one set of alerts.
#[derive(Debug, Default)]
pub struct Inhibitions<'a> {
    rules: Vec<(&'a InhibitRuleConfig, RuleSources)>,
}

/// Per rule: equal-label values -> (source fingerprint, source also matches the target side).
type RuleSources = HashMap<Vec<String>, Vec<(u64, bool)>>;

impl<'a> Inhibitions<'a> {
    /// Indexes the firing alerts among `alerts` as sources of `rules`.
    pub fn new<'b>(
        rules: &'a [InhibitRuleConfig],
        alerts: impl Iterator<Item = &'b Alert> + Clone,
    ) -> Self {
        let rules = rules
            .iter()
            .map(|r| {
                let mut sources: RuleSources = HashMap::new();
                for a in alerts.clone() {
                    if a.state != AlertState::Firing || !all_match(&r.source_matchers, &a.labels) {
                        continue;
                    }
                    sources
                        .entry(equal_values(&r.equal, &a.labels))
                        .or_default()
                        .push((
                            crate::alert::fingerprint(&a.labels),
                            all_match(&r.target_matchers, &a.labels),
                        ));
                }
                (r, sources)
            })
            .collect();
        Self { rules }
    }

    /// The fingerprint of an alert that inhibits one with `labels`, if any.
    pub fn inhibited_by(&self, labels: &BTreeMap<String, String>) -> Option<u64> {
        let me = crate::alert::fingerprint(labels);
        for (rule, sources) in &self.rules {
            if !all_match(&rule.target_matchers, labels) {
                continue;
            }
            let two_sided = all_match(&rule.source_matchers, labels);
            let Some(candidates) = sources.get(&equal_values(&rule.equal, labels)) else {
                continue;
            };
            if let Some((fp, _)) = candidates
                .iter()
                .find(|(fp, both)| *fp != me && !(two_sided && *both))
            {
                return Some(*fp);
            }
        }
        None
    }
}

fn equal_values(equal: &[String], labels: &BTreeMap<String, String>) -> Vec<String> {
    equal
        .iter()
        .map(|l| labels.get(l).cloned().unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(pairs: &[(&str, &str)], state: AlertState) -> Alert {
        Alert {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::new(),
            state,
            active_at_ms: 0,
            fired_at_ms: Some(0),
            resolved_at_ms: None,
            value: 1.0,
            inhibited_by: None,
            generator_url: String::new(),
        }
    }

    #[test]
    fn source_target_equal() {
        let rules: Vec<InhibitRuleConfig> = serde_yaml::from_str(
            "- {source_matchers: [severity=page], target_matchers: [severity=ticket], equal: [slo]}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let page = alert(&[("severity", "page"), ("slo", "a")], AlertState::Firing);
        let pending_page = alert(&[("severity", "page"), ("slo", "c")], AlertState::Pending);
        let alerts = [page.clone(), pending_page];
        let inh = Inhibitions::new(&rules, alerts.iter());
        let t_a = alert(&[("severity", "ticket"), ("slo", "a")], AlertState::Firing);
        let t_b = alert(&[("severity", "ticket"), ("slo", "b")], AlertState::Firing);
        let t_c = alert(&[("severity", "ticket"), ("slo", "c")], AlertState::Firing);
        assert_eq!(
            inh.inhibited_by(&t_a.labels),
            Some(crate::alert::fingerprint(&page.labels))
        );
        assert_eq!(inh.inhibited_by(&t_b.labels), None, "equal label differs");
        assert_eq!(
            inh.inhibited_by(&t_c.labels),
            None,
            "a pending source does not inhibit"
        );
        assert_eq!(inh.inhibited_by(&page.labels), None);
    }

    #[test]
    fn two_sided_matches_do_not_inhibit_each_other() {
        let rules: Vec<InhibitRuleConfig> = serde_yaml::from_str(
            "- {source_matchers: [alertname=~'.+'], target_matchers: [alertname=~'.+'], equal: [cluster]}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let a = alert(&[("alertname", "A"), ("cluster", "x")], AlertState::Firing);
        let b = alert(&[("alertname", "B"), ("cluster", "x")], AlertState::Firing);
        let alerts = [a.clone(), b.clone()];
        let inh = Inhibitions::new(&rules, alerts.iter());
        assert_eq!(inh.inhibited_by(&a.labels), None);
        assert_eq!(inh.inhibited_by(&b.labels), None);
    }
}
