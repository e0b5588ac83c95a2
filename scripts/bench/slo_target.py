#!/usr/bin/env python3
"""Exposition for the SLO benchmark (scripts/bench/slo.sh): request counters of N services.

Serves /metrics on 127.0.0.1:PORT with, per service svc-<i>, counters
http_requests_total{service,code="200"|"500"} that grow with wall time (each service has its own
request rate and error ratio), so Prometheus and Vigil see the same, moving data.

    slo_target.py PORT SERVICES
"""
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
SERVICES = int(sys.argv[2])
START = time.time()


def body() -> bytes:
    t = time.time() - START
    out = [
        "# HELP http_requests_total Requests served.\n",
        "# TYPE http_requests_total counter\n",
    ]
    for i in range(SERVICES):
        rate = 5 + i % 50  # requests per second
        err = 0.0005 * (1 + i % 7)  # error ratio
        total = int(t * rate)
        errors = int(t * rate * err)
        out.append(f'http_requests_total{{service="svc-{i}",code="200"}} {total - errors}\n')
        out.append(f'http_requests_total{{service="svc-{i}",code="500"}} {errors}\n')
    return "".join(out).encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        data = body()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
