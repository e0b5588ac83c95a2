#!/usr/bin/env python3
"""Reference exposition parser for tests/exposition_diff.rs.

Parses one exposition file with the Python `prometheus_client` package (an implementation
independent of Vigil's) and prints one JSON object per sample, in exposition order:

    {"name": str, "labels": [[name, value], ...], "value": str, "int": bool,
     "ts": null | {"kind": "ms_f", "v": str} | {"kind": "sec_ns", "sec": int, "nsec": int}
           | {"kind": "sec_f", "v": str},
     "exemplar": null | {"labels": [...], "value": str, "int": bool, "ts": ...}}

Usage: exposition_ref.py FILE text|openmetrics

- "value" is exact: `str(int)` when prometheus_client parsed an integer, `repr(float)`
  (shortest round-trip) otherwise, with NaN/+Inf/-Inf spelled as in the exposition formats.
  "int" says which (an integer "-0" loses its sign in Python).
- Timestamps: the text parser returns float seconds computed as `int_ms / 1000` (one
  correctly rounded division), reported as "ms_f" with that float's repr. The OpenMetrics
  parser returns a `Timestamp(sec, nsec)` for integer and plain decimal timestamps (exact,
  reported as "sec_ns") and a float for anything else such as `1.5e9` ("sec_f").
- Nothing is normalised here (e.g. the text parser's renaming of counter samples to
  `<name>_total`); the Rust test documents and applies such normalisations.

Exit status: 0 when the file parsed, 3 with the Python error on stderr when it did not
(not 2, which the interpreter itself uses, e.g. for a missing script), 1 on usage errors.
"""

import json
import math
import sys


def fmt_value(v):
    if isinstance(v, bool):  # never produced, but bool is an int subclass
        v = int(v)
    if isinstance(v, int):
        return str(v), True
    v = float(v)
    if math.isnan(v):
        return "NaN", False
    if v == math.inf:
        return "+Inf", False
    if v == -math.inf:
        return "-Inf", False
    return repr(v), False


def fmt_ts(ts, openmetrics, timestamp_cls):
    if ts is None:
        return None
    if isinstance(ts, timestamp_cls):
        return {"kind": "sec_ns", "sec": ts.sec, "nsec": ts.nsec}
    if openmetrics:
        return {"kind": "sec_f", "v": repr(float(ts))}
    return {"kind": "ms_f", "v": repr(float(ts))}


def fmt_labels(labels):
    return [[k, v] for k, v in (labels or {}).items()]


def main(argv):
    if len(argv) != 3 or argv[2] not in ("text", "openmetrics"):
        print(__doc__, file=sys.stderr)
        return 1
    path, fmt = argv[1], argv[2]
    from prometheus_client.samples import Timestamp

    if fmt == "openmetrics":
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    om = fmt == "openmetrics"
    # Bytes are decoded strictly: invalid UTF-8 is an error, as in Vigil's parser.
    with open(path, "rb") as f:
        raw = f.read()
    out = []
    try:
        text = raw.decode("utf-8")
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.native_histogram is not None:
                    raise ValueError("native histogram sample (not supported by the diff)")
                value, is_int = fmt_value(s.value)
                obj = {
                    "name": s.name,
                    "labels": fmt_labels(s.labels),
                    "value": value,
                    "int": is_int,
                    "ts": fmt_ts(s.timestamp, om, Timestamp),
                    "exemplar": None,
                }
                if s.exemplar is not None:
                    ev, ev_int = fmt_value(s.exemplar.value)
                    obj["exemplar"] = {
                        "labels": fmt_labels(s.exemplar.labels),
                        "value": ev,
                        "int": ev_int,
                        "ts": fmt_ts(s.exemplar.timestamp, om, Timestamp),
                    }
                out.append(json.dumps(obj, ensure_ascii=True))
    except Exception as e:  # noqa: BLE001 - any failure is "rejected" for the caller
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 3
    sys.stdout.write("\n".join(out))
    if out:
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
