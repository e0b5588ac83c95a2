#!/usr/bin/env python3
"""Helpers of scripts/bench/alert_latency.sh.

    alert_latency.py receiver PORT LOG
        A webhook receiver (Alertmanager webhook payload v4, which both Vigil and Alertmanager
        POST): appends one JSON line per firing or resolved alert to LOG with the arrival time
        (`time.time()`), the path (/vigil or /alertmanager: who sent it), the notification
        status and the alert's labels. Answers 200.

    alert_latency.py rules SLO_RULES_PY OUT
        Sloth-style Prometheus rules for the demo's availability SLO (99.5%, 30d, errors
        http_requests_total{job="demo",code=~"5.."} over http_requests_total{job="demo"}),
        made by running scripts/bench/slo_rules.py for one service with alerts and rewriting its
        selectors and objective (so the rule shapes stay exactly the ones slo.sh measures).

    alert_latency.py first LOG PATH SINCE
        Prints the arrival time minus SINCE (seconds) of the first firing page of the
        availability SLO (Vigil: severity=page, slo=availability; Sloth: sloth_severity=page,
        sloth_slo=availability) that arrived on PATH after SINCE, or nothing.

    alert_latency.py summary LOG_OF_RESULTS
        Reads lines "peer run seconds" and prints a Markdown table: runs, median, max per peer.
"""
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def receiver(port, log):
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            now = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.end_headers()
            try:
                payload = json.loads(body)
            except ValueError:
                return
            with lock, open(log, "a") as f:
                for a in payload.get("alerts", []):
                    f.write(
                        json.dumps(
                            {
                                "t": now,
                                "path": self.path,
                                "status": a.get("status"),
                                "labels": a.get("labels", {}),
                            }
                        )
                        + "\n"
                    )

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()


def rules(slo_rules_py, out):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(
            [sys.executable, slo_rules_py, "1", os.path.join(d, "v.yaml"), os.path.join(d, "p.yml"), "alerts"],
            check=True,
        )
        text = open(os.path.join(d, "p.yml")).read()
    text = (
        text.replace('http_requests_total{service="svc-0",code=~"5.."}', 'http_requests_total{job="demo",code=~"5.."}')
        .replace('http_requests_total{service="svc-0"}', 'http_requests_total{job="demo"}')
        .replace("vector(0.999)", "vector(0.995)")
        .replace("vector(1-0.999)", "vector(1-0.995)")
        .replace("* 0.0010)", "* 0.0050)")
        .replace("svc-0", "demo")
    )
    if "svc-" in text or "0.0010" in text or 'job="demo"' not in text:
        sys.exit("alert_latency.py: slo_rules.py output changed shape; update the rewrite")
    open(out, "w").write(text)


def first(log, path, since):
    best = None
    try:
        lines = open(log).read().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        e = json.loads(line)
        sev = e["labels"].get("severity") or e["labels"].get("sloth_severity")
        slo = e["labels"].get("slo") or e["labels"].get("sloth_slo")
        if (
            e["path"] == path
            and e["status"] == "firing"
            and sev == "page"
            and slo == "availability"
            and e["t"] >= since
        ):
            best = e["t"] if best is None else min(best, e["t"])
    if best is not None:
        print(f"{best - since:.3f}")


def summary(path):
    by = {}
    for line in open(path).read().splitlines():
        peer, _run, secs = line.split()
        by.setdefault(peer, []).append(float(secs))
    print("| peer | runs | median (s) | min (s) | max (s) | each run (s) |")
    print("|---|---|---|---|---|---|")
    for peer, v in by.items():
        each = ", ".join(f"{x:.1f}" for x in v)
        print(f"| {peer} | {len(v)} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} | {each} |")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "receiver":
        receiver(int(sys.argv[2]), sys.argv[3])
    elif cmd == "rules":
        rules(sys.argv[2], sys.argv[3])
    elif cmd == "first":
        first(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif cmd == "summary":
        summary(sys.argv[2])
    else:
        sys.exit(f"unknown command {cmd}")
