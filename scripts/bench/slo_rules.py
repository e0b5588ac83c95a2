#!/usr/bin/env python3
"""Writes the SLO benchmark's rules (scripts/bench/slo.sh) for N services, both ways:

- vigil.yaml-style SLO file: one 99.9% / 30d availability SLO per service (ratio SLI);
- the same SLOs as Sloth-style Prometheus recording rules: per SLO one SLI group (error ratio
  over 5m, 30m, 1h, 2h, 6h, 1d, 3d, and the 30d ratio as Sloth computes it from the 5m one) and
  one meta group (objective, error budget, current and period burn rate, budget remaining), and
  one alert group (the page and ticket multiwindow multi-burn-rate alerts: 5m&1h at 14.4 or
  30m&6h at 6; 2h&1d at 3 or 6h&3d at 1), the shape of what `sloth generate` writes for a
  prometheus/v1 spec. Vigil evaluates the same tiers (its defaults) for its SLOs.

    slo_rules.py SERVICES VIGIL_RULES_FILE PROMETHEUS_RULES_FILE [alerts]

Without `alerts` (the default of slo.sh) both sides evaluate the SLOs only: Prometheus gets
the recording rules, and Vigil's SLOs have `alerts: {enabled: false}`. With it, Prometheus also
gets the alert groups and Vigil evaluates its default alert tiers.
"""
import sys

n, vigil_path, prom_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with_alerts = len(sys.argv) > 4 and sys.argv[4] == "alerts"
OBJ = 0.999
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]

with open(vigil_path, "w") as f:
    f.write("version: vigil/v1\nservice: bench\nslos:\n")
    for i in range(n):
        f.write(
            f"""  - name: svc-{i}-availability
    objective: 99.9
    window: 30d
    alerts: {{enabled: {"true" if with_alerts else "false"}}}
    sli:
      ratio:
        errors: http_requests_total{{service="svc-{i}",code=~"5.."}}
        total: http_requests_total{{service="svc-{i}"}}
"""
        )

with open(prom_path, "w") as f:
    f.write("groups:\n")
    for i in range(n):
        sid = f"svc-{i}-availability"
        sel = f'sloth_id="{sid}", sloth_service="svc-{i}", sloth_slo="availability"'
        labels = f'sloth_id: "{sid}"\n        sloth_service: "svc-{i}"\n        sloth_slo: "availability"'
        f.write(f"  - name: sloth-slo-sli-recordings-{sid}\n    rules:\n")
        for w in WINDOWS:
            f.write(
                f"""      - record: slo:sli_error:ratio_rate{w}
        expr: |
          (sum(rate(http_requests_total{{service="svc-{i}",code=~"5.."}}[{w}])))
          /
          (sum(rate(http_requests_total{{service="svc-{i}"}}[{w}])))
        labels:
        {labels}
          sloth_window: {w}
""".replace("\n        sloth_service", "\n          sloth_service").replace("\n        sloth_slo", "\n          sloth_slo").replace("labels:\n        sloth_id", "labels:\n          sloth_id")
            )
        f.write(
            f"""      - record: slo:sli_error:ratio_rate30d
        expr: |
          sum_over_time(slo:sli_error:ratio_rate5m{{{sel}}}[30d])
          / ignoring (sloth_window)
          count_over_time(slo:sli_error:ratio_rate5m{{{sel}}}[30d])
        labels:
          sloth_id: "{sid}"
          sloth_service: "svc-{i}"
          sloth_slo: "availability"
          sloth_window: 30d
"""
        )
        f.write(f"  - name: sloth-slo-meta-recordings-{sid}\n    rules:\n")
        meta = [
            ("slo:objective:ratio", f"vector({OBJ})"),
            ("slo:error_budget:ratio", f"vector(1-{OBJ})"),
            ("slo:time_period:days", "vector(30)"),
            (
                "slo:current_burn_rate:ratio",
                f"slo:sli_error:ratio_rate5m{{{sel}}} / on(sloth_id, sloth_slo, sloth_service) group_left slo:error_budget:ratio{{{sel}}}",
            ),
            (
                "slo:period_burn_rate:ratio",
                f"slo:sli_error:ratio_rate30d{{{sel}}} / on(sloth_id, sloth_slo, sloth_service) group_left slo:error_budget:ratio{{{sel}}}",
            ),
            (
                "slo:period_error_budget_remaining:ratio",
                f"1 - slo:period_burn_rate:ratio{{{sel}}}",
            ),
            ("sloth_slo_info", "vector(1)"),
        ]
        alerts = [
            ("page", [("5m", "1h", 14.4), ("30m", "6h", 6)]),
            ("ticket", [("2h", "1d", 3), ("6h", "3d", 1)]),
        ]
        for rec, expr in meta:
            f.write(
                f"""      - record: {rec}
        expr: {expr!r}
        labels:
          sloth_id: "{sid}"
          sloth_service: "svc-{i}"
          sloth_slo: "availability"
"""
            )
        if not with_alerts:
            continue
        f.write(f"  - name: sloth-slo-alerts-{sid}\n    rules:\n")
        for severity, pairs in alerts:
            conds = []
            for short, long, factor in pairs:
                conds.append(
                    f"(max(slo:sli_error:ratio_rate{short}{{{sel}}} > ({factor} * {1 - OBJ:.4f})) without (sloth_window)"
                    f" and max(slo:sli_error:ratio_rate{long}{{{sel}}} > ({factor} * {1 - OBJ:.4f})) without (sloth_window))"
                )
            f.write(
                f"""      - alert: SLOBurnRateHigh
        expr: {" or ".join(conds)!r}
        labels:
          sloth_id: "{sid}"
          sloth_severity: {severity}
"""
            )
