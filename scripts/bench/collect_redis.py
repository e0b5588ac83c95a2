"""Helper of scripts/bench/collect_redis.sh: runs a private redis-server, fills it, then runs
three phases of SECONDS each, one process at a time so that every command the server counts
belongs to the process measured:

  idle     vigil with no collector (its baseline CPU: API, SLO engine, ledger)
  vigil    vigil with a redis collector every 1s (keys, a pattern, a stream, BullMQ)
  exporter redis_exporter scraped every 1s with the same key checks

/metrics of the process under test is fetched once a second in every phase (as Prometheus
would). Per collection: CPU ms (vigil minus idle), wall ms (vigil_collector_duration_seconds /
redis_exporter_last_scrape_duration_seconds, averaged), commands and new connections (INFO
deltas on the server, minus the benchmark's own INFO calls)."""

import argparse
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Resp:
    """A minimal RESP client for setup and INFO (no dependency on redis-py)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data.decode(errors="replace")
        if t == b"*":
            return [self._read() for _ in range(int(rest))]
        raise ValueError(line)

    def pipeline(self, cmds):
        out = b""
        for c in cmds:
            out += b"*%d\r\n" % len(c)
            for a in c:
                a = str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return [self._read() for _ in cmds]

    def info(self):
        text = self.pipeline([["INFO", "ALL"]])[0]
        fields = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                fields[k] = v
        return fields


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def value(text, prefix):
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for(fn, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def fill(r):
    cmds = [["SET", f"bench:str:{i}", "x" * 16] for i in range(5000)]
    cmds += [["RPUSH", "bench:queue:jobs", *range(100)]]
    cmds += [["SADD", f"bench:set:{i}", "a", "b"] for i in range(50)]
    cmds += [["XADD", "bench:stream", "*", "f", i] for i in range(100)]
    cmds += [["XGROUP", "CREATE", "bench:stream", "g", "0"]]
    cmds += [["LPUSH", "bull:mail:wait", 1, 2, 3], ["ZADD", "bull:mail:completed", 1, "a"]]
    r.pipeline(cmds)


def phase(name, pid, metrics_url, seconds, r, collections_fn, wall_fn):
    info0 = r.info()
    c0, t0 = cpu_ticks(pid), time.time()
    coll0 = collections_fn(get(metrics_url))
    walls = []
    end = time.time() + seconds
    while time.time() < end:
        text = get(metrics_url)
        w = wall_fn(text)
        if w is not None:
            walls.append(w)
        time.sleep(1)
    text = get(metrics_url)
    coll1 = collections_fn(text)
    c1, t1 = cpu_ticks(pid), time.time()
    info1 = r.info()
    # The two INFO calls of the benchmark itself.
    cmds = int(info1["total_commands_processed"]) - int(info0["total_commands_processed"]) - 1
    conns = int(info1["total_connections_received"]) - int(info0["total_connections_received"])
    n = (coll1 or 0) - (coll0 or 0)
    return {
        "name": name,
        "cpu_s": (c1 - c0) / TICK,
        "elapsed": t1 - t0,
        "collections": n,
        "commands": cmds,
        "connections": conns,
        "wall_ms": 1000 * sum(walls) / len(walls) if walls else float("nan"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", required=True)
    ap.add_argument("--redis-server", required=True)
    ap.add_argument("--exporter", required=True)
    ap.add_argument("--seconds", type=int, default=30)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vigil-bench-redis-")
    procs = []
    try:
        port = free_port()
        procs.append(
            subprocess.Popen(
                [a.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", work],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )
        r = wait_for(lambda: _try(lambda: Resp(port)), "redis-server")
        fill(r)
        url = f"redis://127.0.0.1:{port}/0"

        def vigil(collectors, listen):
            cfg = os.path.join(work, f"vigil-{listen}.yaml")
            with open(cfg, "w") as f:
                f.write(
                    f"agent:\n  listen: 127.0.0.1:{listen}\n  data_dir: {work}/data-{listen}\n"
                    f"  evaluation_interval: 1s\n{collectors}"
                )
            env = dict(os.environ, BENCH_REDIS_URL=url, RUST_LOG="warn")
            p = subprocess.Popen([a.vigil, "run", "--config", cfg], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            wait_for(lambda: get(f"http://127.0.0.1:{listen}/metrics"), "vigil")
            return p

        lp = free_port()
        p = vigil("", lp)
        time.sleep(2)
        idle = phase("idle", p.pid, f"http://127.0.0.1:{lp}/metrics", a.seconds, r,
                     lambda t: 0, lambda t: None)
        p.terminate(); p.wait()

        keys_yaml = (
            "    keys:\n      - {db: 0, key: 'bench:queue:jobs'}\n"
            "      - {db: 0, key: 'bench:stream'}\n      - {db: 0, key: 'bench:missing'}\n"
            "      - {db: 0, pattern: 'bench:set:*'}\n    bullmq: [mail]\n"
        )
        exporter_keys = [
            "--check-single-keys=db0=bench:queue:jobs,db0=bench:stream,db0=bench:missing,"
            "db0=bull:mail:wait,db0=bull:mail:active,db0=bull:mail:delayed,db0=bull:mail:failed,"
            "db0=bull:mail:completed,db0=bull:mail:paused,db0=bull:mail:prioritized",
            "--check-keys=db0=bench:set:*", "--count-keys=db0=bench:set:*",
            "--check-single-streams=db0=bench:stream",
        ]
        for scenario, vigil_extra, exporter_extra in [
            ("INFO only", "", []),
            ("INFO + 53 keys, a pattern over 5150 keys, a stream, a BullMQ queue",
             keys_yaml, exporter_keys),
        ]:
            lp = free_port()
            p = vigil(
                "collectors:\n  - name: bench\n    type: redis\n    interval: 1s\n"
                "    timeout: 1s\n    url_env: BENCH_REDIS_URL\n" + vigil_extra,
                lp,
            )
            m = f"http://127.0.0.1:{lp}/metrics"
            wait_for(lambda: value(get(m), 'redis_up{instance="bench"') == 1.0,
                     "vigil collection")
            v = phase(
                "vigil", p.pid, m, a.seconds, r,
                lambda t: value(t, 'vigil_collector_collections_total{collector="bench"'),
                lambda t: value(t, 'vigil_collector_duration_seconds{collector="bench"'),
            )
            p.terminate(); p.wait()
            ep = free_port()
            e = subprocess.Popen(
                [a.exporter, f"--redis.addr=redis://127.0.0.1:{port}",
                 f"--web.listen-address=127.0.0.1:{ep}", *exporter_extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            procs.append(e)
            m = f"http://127.0.0.1:{ep}/metrics"
            wait_for(lambda: "redis_up 1" in get(m), "redis_exporter")
            x = phase(
                "exporter", e.pid, m, a.seconds, r,
                lambda t: value(t, "redis_exporter_scrapes_total"),
                lambda t: value(t, "redis_exporter_last_scrape_duration_seconds"),
            )
            e.terminate(); e.wait()
            print(f"\n## {scenario}")
            report([idle, v, x])
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


def _try(fn):
    try:
        return fn()
    except OSError:
        return None


def report(results):
    idle, v, e = results
    idle_rate = idle["cpu_s"] / idle["elapsed"]
    v_cpu = max(v["cpu_s"] - idle_rate * v["elapsed"], 0.0)
    rows = {
        "vigil": (v_cpu * 1000 / v["collections"], v["wall_ms"],
                  v["commands"] / v["collections"], v["connections"] / v["collections"]),
        "exporter": (e["cpu_s"] * 1000 / e["collections"], e["wall_ms"],
                     e["commands"] / e["collections"], e["connections"] / e["collections"]),
    }
    print(f"phases of {v['elapsed']:.0f}s; collections: vigil {v['collections']:.0f}, "
          f"exporter {e['collections']:.0f}; vigil idle CPU {idle_rate * 100:.2f}% (subtracted)")
    print(f"{'per collection':<16}{'CPU ms':>10}{'wall ms':>10}{'commands':>10}{'conns':>8}")
    for name, (cpu, wall, cmds, conns) in rows.items():
        print(f"{name:<16}{cpu:>10.2f}{wall:>10.2f}{cmds:>10.1f}{conns:>8.2f}")
    (vc, vw, vm, _), (ec, ew, em, _) = rows["vigil"], rows["exporter"]
    print(f"{'vigil/exporter':<16}{vc / ec:>10.2f}{vw / ew:>10.2f}{vm / em:>10.2f}")


if __name__ == "__main__":
    main()
