"""Driver of scripts/bench/collect_postgres.sh (see there). Args: rounds interval vigil_bin
pg_bin exporter_bin settings."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

rounds, interval = int(sys.argv[1]), float(sys.argv[2])
vigil_bin, pg_bin, exporter_bin, settings = sys.argv[3:7]
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def value(text, prefix):
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def as_postgres(*args):
    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


work = tempfile.mkdtemp(prefix="vigil-bench-pg-")
shutil.chown(work, "postgres")
data, log = f"{work}/data", f"{work}/pg.log"
pg_port, vigil_port, exp_port, idle_port = free_port(), free_port(), free_port(), free_port()
procs = []
try:
    as_postgres(f"{pg_bin}/initdb", "-D", data, "-U", "vigil", "--auth=trust", "-E", "UTF8",
                "--locale=C.UTF-8")
    opts = (f"-p {pg_port} -k {work} -c listen_addresses=127.0.0.1 -c fsync=off "
            f"-c log_statement=all -c log_line_prefix='%a|'")
    as_postgres(f"{pg_bin}/pg_ctl", "-D", data, "-l", log, "-o", opts, "-w", "start")
    url = f"postgres://vigil@127.0.0.1:{pg_port}/postgres"
    with open(f"{work}/vigil.yaml", "w") as f:
        f.write(f"""agent:
  listen: 127.0.0.1:{vigil_port}
  data_dir: {work}/vigil-data
collectors:
  - name: bench
    type: postgres
    interval: {int(interval)}s
    timeout: {int(interval)}s
    url_env: BENCH_PG_URL
    settings: {settings}
""")
    # The same daemon without collectors, scraped the same way: its CPU is the agent's own
    # overhead (SLO engine, HTTP), subtracted to get the collector's share.
    with open(f"{work}/idle.yaml", "w") as f:
        f.write(f"agent:\n  listen: 127.0.0.1:{idle_port}\n  data_dir: {work}/idle-data\n")
    env = dict(os.environ, BENCH_PG_URL=url, RUST_LOG="warn")
    idle = subprocess.Popen([vigil_bin, "run", "--config", f"{work}/idle.yaml"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(idle)
    vigil = subprocess.Popen([vigil_bin, "run", "--config", f"{work}/vigil.yaml"], env=env,
                             stdout=subprocess.DEVNULL, stderr=open(f"{work}/vigil.log", "w"))
    procs.append(vigil)
    exp_env = dict(os.environ,
                   DATA_SOURCE_NAME=f"{url}?sslmode=disable&application_name=pg_exporter")
    exporter = subprocess.Popen([exporter_bin, f"--web.listen-address=127.0.0.1:{exp_port}"],
                                env=exp_env, stdout=subprocess.DEVNULL,
                                stderr=open(f"{work}/exporter.log", "w"))
    procs.append(exporter)
    vurl, eurl = f"http://127.0.0.1:{vigil_port}/metrics", f"http://127.0.0.1:{exp_port}/metrics"
    iurl = f"http://127.0.0.1:{idle_port}/metrics"
    # Warm-up: both connected and collected a few times.
    for _ in range(100):
        try:
            vt, et = get(vurl), get(eurl)
            if value(vt, 'pg_up{instance="bench"') == 1 and value(et, "pg_up") == 1:
                break
        except OSError:
            pass
        time.sleep(0.2)
    time.sleep(3 * interval)

    def count_statements():
        counts = {"vigil": 0, "pg_exporter": 0}
        with open(log, errors="replace") as f:
            for line in f:
                m = re.match(r"^([^|]*)\|.*LOG:  (statement|execute [^:]*):", line)
                if m and m.group(1) in counts:
                    counts[m.group(1)] += 1
        return counts

    vt, et = get(vurl), get(eurl)
    v_coll0 = value(vt, 'vigil_collector_collections_total{collector="bench"')
    e_coll0 = value(et, "pg_exporter_scrapes_total")
    st0 = count_statements()
    v_cpu0, e_cpu0, i_cpu0 = cpu_seconds(vigil.pid), cpu_seconds(exporter.pid), cpu_seconds(idle.pid)
    v_wall, e_wall = [], []
    for _ in range(rounds):
        t0 = time.monotonic()
        vt, et, _ = get(vurl), get(eurl), get(iurl)
        v_wall.append(value(vt, 'vigil_collector_duration_seconds{collector="bench"'))
        e_wall.append(value(et, "pg_exporter_last_scrape_duration_seconds"))
        time.sleep(max(0.0, interval - (time.monotonic() - t0)))
    v_cpu, e_cpu = cpu_seconds(vigil.pid) - v_cpu0, cpu_seconds(exporter.pid) - e_cpu0
    i_cpu = cpu_seconds(idle.pid) - i_cpu0
    vt = get(vurl)
    v_coll = value(vt, 'vigil_collector_collections_total{collector="bench"') - v_coll0
    e_coll = value(get(eurl), "pg_exporter_scrapes_total") - e_coll0
    time.sleep(0.5)
    st1 = count_statements()
    v_q = (st1["vigil"] - st0["vigil"]) / v_coll
    e_q = (st1["pg_exporter"] - st0["pg_exporter"]) / e_coll
    v_ms, e_ms = 1000 * sum(v_wall) / len(v_wall), 1000 * sum(e_wall) / len(e_wall)
    v_cpu_ms, e_cpu_ms = 1000 * v_cpu / v_coll, 1000 * e_cpu / e_coll
    c_cpu_ms = 1000 * max(0.0, v_cpu - i_cpu) / v_coll
    v_series = sum(1 for l in vt.splitlines() if l.startswith("pg_"))
    print(f"rounds {rounds}, interval {interval}s, vigil {vigil_bin}, settings: {settings}")
    print(f"collections: vigil {v_coll:.0f}, exporter {e_coll:.0f} (pg_ series exposed by vigil: {v_series})")
    print("| per collection | vigil | postgres_exporter 0.11 | vigil / exporter |")
    print("|---|---|---|---|")
    print(f"| CPU time, whole process (ms) | {v_cpu_ms:.2f} | {e_cpu_ms:.2f} | {v_cpu_ms / e_cpu_ms:.2f} |")
    print(f"| CPU time, collector only (ms; vigil minus an idle vigil) | {c_cpu_ms:.2f} | {e_cpu_ms:.2f} | {c_cpu_ms / e_cpu_ms:.2f} |")
    print(f"| wall time (ms) | {v_ms:.2f} | {e_ms:.2f} | {v_ms / e_ms:.2f} |")
    print(f"| server statements | {v_q:.1f} | {e_q:.1f} | {v_q / e_q:.2f} |")
finally:
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    subprocess.run(["runuser", "-u", "postgres", "--", f"{pg_bin}/pg_ctl", "-D", data, "-m",
                    "immediate", "-w", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if os.environ.get("KEEP_WORKDIR"):
        print(f"kept {work} (pg.log has every statement)")
    else:
        shutil.rmtree(work, ignore_errors=True)
