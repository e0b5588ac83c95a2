#!/usr/bin/env python3
"""Helpers of scripts/bench/scrape.sh (standard library only).

  scrape_stats.py log LOG PEER T0 T1 SERIES     scrapes of PEER in [T0, T1) from the nginx
                                                access log, samples, jitter; prints key=value
  scrape_stats.py targets URL                   "<up> <total>" from a Prometheus-shaped
                                                /api/v1/targets
  scrape_stats.py metric URL|FILE NAME          sum of every sample of NAME on a /metrics page
  scrape_stats.py table RESULTS_TSV             the Markdown table, ratios and the verdict

The access log lines are written by the nginx config of scrape.sh:
  $msec $request_time $status $body_bytes_sent $request_uri
$msec is when the response was logged and $request_time how long the request took, so the
request started at $msec - $request_time; jitter uses that start time.
"""

import json
import sys
import urllib.request
from urllib.parse import parse_qs, urlsplit


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def cmd_log(path, peer, t0, t1, series):
    t0, t1, series = float(t0), float(t1), int(series)
    prefix = "/%s/" % peer
    starts = {}  # target -> request start times (all of the run, for intervals)
    scrapes = bad = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 5 or not parts[4].startswith(prefix):
                continue
            try:
                msec, rtime, status = float(parts[0]), float(parts[1]), int(parts[2])
            except ValueError:
                continue
            start = msec - rtime
            t = parse_qs(urlsplit(parts[4]).query).get("t", ["?"])[0]
            starts.setdefault(t, []).append(start)
            if t0 <= start < t1:
                scrapes += 1
                if status != 200:
                    bad += 1
    devs = []
    targets_in_window = 0
    for times in starts.values():
        times.sort()
        seen = False
        for a, b in zip(times, times[1:]):
            if t0 <= b < t1:
                devs.append(abs((b - a) - 1.0) * 1000.0)
                seen = True
        targets_in_window += seen
    devs.sort()
    good = scrapes - bad
    fmt = lambda v: "nan" if v is None else "%.2f" % v
    print("scrapes=%d" % scrapes)
    print("non200=%d" % bad)
    print("samples=%d" % (good * series))
    print("targets_seen=%d" % targets_in_window)
    print("intervals=%d" % len(devs))
    print("jitter_p50_ms=%s" % fmt(pct(devs, 50)))
    print("jitter_p99_ms=%s" % fmt(pct(devs, 99)))
    print("jitter_max_ms=%s" % fmt(devs[-1] if devs else None))


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode("utf-8", "replace")


def cmd_targets(url):
    try:
        data = json.loads(fetch(url))
        active = data.get("data", {}).get("activeTargets", [])
        up = sum(1 for t in active if t.get("health") == "up")
        print(up, len(active))
    except Exception as e:  # report, never fail the benchmark on it
        print("?", "?", "(%s)" % e)


def cmd_metric(url, name):
    try:
        total, found = 0.0, False
        if url.startswith("http"):
            text = fetch(url)
        else:
            with open(url, encoding="utf-8", errors="replace") as f:
                text = f.read()
        for line in text.splitlines():
            if not line.startswith(name) or line[len(name):len(name) + 1] not in (" ", "{"):
                continue
            rest = line.rsplit("}", 1)[1] if line[len(name)] == "{" else line[len(name):]
            total += float(rest.split()[0])
            found = True
        print(("%.0f" % total) if found else "?")
    except Exception:
        print("?")


COLS = [
    ("run", "run"),
    ("peer", "peer"),
    ("scrapes", "scrapes"),
    ("samples", "samples"),
    ("cpu_s", "CPU s"),
    ("cpu_per_m", "CPU s / M samples"),
    ("rss_mb", "RSS MiB (end)"),
    ("up", "targets up"),
    ("jitter_p50_ms", "jitter p50 ms"),
    ("jitter_p99_ms", "jitter p99 ms"),
    ("jitter_max_ms", "jitter max ms"),
    ("load1", "load avg 1m (start→end)"),
]


def cmd_table(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            if line.strip():
                rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    print("| " + " | ".join(c[1] for c in COLS) + " |")
    print("|" + "---|" * len(COLS))
    for r in rows:
        print("| " + " | ".join(r.get(c[0], "") for c in COLS) + " |")
    print()
    runs = []
    for r in rows:
        if r["run"] not in runs:
            runs.append(r["run"])
    for run in runs:
        per = {}
        for r in rows:
            if r["run"] == run:
                try:
                    per[r["peer"]] = float(r["cpu_per_m"])
                except ValueError:
                    pass
        v = per.get("vigil")
        parts = []
        for peer, target in (("vmagent", 0.5), ("prometheus", 0.2)):
            p = per.get(peer)
            if v is None or not p:
                parts.append("Vigil/%s: n/a" % peer)
                continue
            ratio = v / p
            verdict = "met" if ratio <= target else "NOT met"
            parts.append(
                "Vigil/%s = %.2f (target ≤ %.2f: %s)" % (peer, ratio, target, verdict)
            )
        print("- run %s: %s" % (run, "; ".join(parts)))


def main(argv):
    if len(argv) >= 2 and argv[1] == "log" and len(argv) == 7:
        cmd_log(*argv[2:])
    elif len(argv) == 3 and argv[1] == "targets":
        cmd_targets(argv[2])
    elif len(argv) == 4 and argv[1] == "metric":
        cmd_metric(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "table":
        cmd_table(argv[2])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
