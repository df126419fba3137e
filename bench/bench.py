#!/usr/bin/env python3
"""hookflow load benchmarks (Python 3.11 stdlib only).

Starts a fresh `hookflow serve` in a temporary data dir per workload, drives it with `oha`,
reads run records back through the API and samples the server's /proc entries.

  (a) intake     durable webhook intake, flow with no steps, oha max rate, 64 connections
  (b) throughput webhook -> router -> log plugin -> done; fire N events, wait for drain,
                 completed runs/s from the runs' own timestamps
  (c) latency    same flow at a fixed rate (oha -q); end-to-end finished - created per run
  floor          (run first) the HTTP floor: bench/floor's `hookflow-floor` (bare axum on the
                 same stack: read body, parse JSON, answer 202) under exactly the load of (a),
                 so hookflow's figures can be given as ratios measured in the same run

Usage: bench.py --bin target/release/hookflow [--oha oha] [--out bench/out] [--only floor,a,b,c]
       [--floor-bin bench/floor/target/release/hookflow-floor]
       bench.py --compare BEFORE_DIR AFTER_DIR [--compare-out FILE]   (side-by-side table of
                 results.json files written earlier; see bench/compare.sh)
Writes OUT/results.json and OUT/results.md and prints the table.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ADMIN_TOKEN = "bench-admin-token-0123456789"
CLK_TCK = os.sysconf("SC_CLK_TCK")

ROUTER_FLOW = {
    "name": "bench-router",
    "trigger": {"type": "webhook"},
    "steps": [
        {
            "name": "route",
            "type": "router",
            "mode": "firstMatch",
            "branches": [
                {
                    "name": "Failed",
                    "when": [[{
                        "left": "{{trigger.body.action}}",
                        "operator": "TEXT_EXACTLY_MATCHES",
                        "right": "flow.run.finished",
                    }]],
                    "steps": [{
                        "name": "note",
                        "type": "action",
                        "plugin": "log@0.1.0",
                        "input": {"message": "run {{trigger.body.data.flowRun.id}} failed"},
                    }],
                },
                {"name": "Otherwise", "fallback": True, "steps": []},
            ],
        }
    ],
}
INTAKE_FLOW = {"name": "bench-intake", "trigger": {"type": "webhook"}, "steps": []}


def event_body():
    """The first Activepieces sample (flow.run.finished, FAILED) without its `id`, so every
    request is a new event, padded with realistic fields to ~600 bytes of compact JSON."""
    with open(os.path.join(ROOT, "tests", "fixtures", "activepieces-events.json")) as f:
        event = dict(json.load(f)["examples"][0])
    event.pop("id", None)
    event["data"]["flowRun"]["tags"] = ["bench", "hookflow", "load-test"]
    event["data"]["flowRun"]["failedStep"] = {"name": "step_2", "displayName": "Send HTTP request"}
    event["data"]["project"]["externalId"] = "bench-project-0001"
    body = json.dumps(event, separators=(",", ":"))
    assert "\"id\":\"6cBP4kzpuewLDk7rdrclw\"" not in body
    return body


# ---------------------------------------------------------------------------------------------
# process sampling


def proc_cpu(pid):
    """utime+stime of a process in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_threads(pid):
    """{tid: (name, utime_s, stime_s)} for every thread of a process."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                raw = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        name = raw[raw.index("(") + 1: raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        out[tid] = (name, int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK)
    return out


def thread_split(before, after):
    """CPU seconds by thread name (user, system) between two proc_threads() snapshots."""
    split = {}
    for tid, (name, u, s) in after.items():
        u0, s0 = (before[tid][1], before[tid][2]) if tid in before else (0.0, 0.0)
        key = name
        cu, cs = split.get(key, (0.0, 0.0))
        split[key] = (round(cu + u - u0, 2), round(cs + s - s0, 2))
    return {k: v for k, v in sorted(split.items(), key=lambda kv: -sum(kv[1])) if sum(v) > 0}


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    return None


# ---------------------------------------------------------------------------------------------
# server


class Server:
    """A fresh `hookflow serve` (or, with `argv`, any server printing the same
    `... listening on http://ADDR` line first on stdout, e.g. `hookflow-floor`)."""

    def __init__(self, binary, label, workers=None, extra_env=None, argv=None):
        self.dir = tempfile.mkdtemp(prefix=f"hookflow-bench-{label}-")
        env = dict(os.environ)
        env.update({
            "HOOKFLOW_LISTEN": "127.0.0.1:0",
            "HOOKFLOW_DATA_DIR": self.dir,
            "HOOKFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
            "HOOKFLOW_LOG": "warn",
        })
        if workers:
            env["HOOKFLOW_WORKERS"] = str(workers)
        env.update(extra_env or {})
        self.log_path = os.path.join(self.dir, "server.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv or [binary, "serve"], env=env, stdout=subprocess.PIPE,
                                     stderr=self.log, start_new_session=True)
        self.pid = self.proc.pid
        line = {}

        def read_first():
            line["text"] = self.proc.stdout.readline().decode(errors="replace")

        t = threading.Thread(target=read_first, daemon=True)
        t.start()
        t.join(120)  # first start compiles the built-in plugins (cached per data dir)
        text = line.get("text", "")
        if "listening on" not in text:
            self.stop()
            raise RuntimeError(f"server did not start: {text!r}; see {self.log_path}")
        self.base = text.strip().rsplit(" ", 1)[1].rstrip("/")
        # keep draining stdout so the server never blocks on a full pipe
        threading.Thread(target=self._drain_stdout, daemon=True).start()

    def _drain_stdout(self):
        try:
            for _ in self.proc.stdout:
                pass
        except Exception:
            pass

    def request(self, method, path, body=None, headers=None, timeout=30):
        data = None
        hdrs = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            hdrs["content-type"] = "application/json"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, headers=hdrs, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            ctype = resp.headers.get("content-type", "")
            return json.loads(raw) if "json" in ctype else raw.decode()

    def create_flow(self, flow):
        return self.request("POST", "/v1/flows", flow)["id"]

    def metrics(self):
        out = {}
        for line in self.request("GET", "/metrics").splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def live_runs(self):
        m = self.metrics()
        return int(m.get('hookflow_runs{status="QUEUED"}', 0) + m.get('hookflow_runs{status="RUNNING"}', 0))

    def wait_drained(self, timeout):
        """Waits (bounded) until QUEUED+RUNNING = 0; returns (drained, seconds waited)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.live_runs() == 0:
                return True, time.monotonic() - start
            time.sleep(0.05)
        return False, time.monotonic() - start

    def runs(self, flow_id, max_pages=1000):
        runs, cursor = [], None
        for _ in range(max_pages):
            q = f"/v1/flow-runs?flowId={flow_id}&limit=500"
            if cursor:
                q += "&cursor=" + urllib.request.quote(cursor, safe="")
            page = self.request("GET", q, timeout=60)
            runs.extend(page["data"])
            cursor = page.get("next")
            if not cursor:
                break
        return runs

    def urls(self, path):
        return [self.base + path]

    def cpu(self):
        return proc_cpu(self.pid)

    def peak_rss_mb(self):
        return proc_status(self.pid, "VmHWM") / 1024

    def rss_mb(self):
        return proc_status(self.pid, "VmRSS") / 1024

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    """N `hookflow serve` processes on one fresh PostgreSQL database (or one process on it):
    the same interface as `Server`, with load spread over every process's webhook URL."""

    def __init__(self, binary, label, procs, pg_url, workers=None):
        self.admin_url = pg_url
        self.db = f"hookflow_bench_{label}_{os.getpid()}_{int(time.time())}"
        psql(pg_url, f'CREATE DATABASE "{self.db}"')
        url = pg_url.rsplit("/", 1)[0] + "/" + self.db
        env = {"HOOKFLOW_DATABASE_URL": url,
               "HOOKFLOW_SECRET_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
        self.servers = []
        try:
            for i in range(procs):
                self.servers.append(Server(binary, f"{label}{i}", workers, env))
        except Exception:
            self.stop()
            raise
        self.pid = self.servers[0].pid
        self.base = self.servers[0].base

    def urls(self, path):
        return [s.base + path for s in self.servers]

    def create_flow(self, flow):
        return self.servers[0].create_flow(flow)

    def metrics(self):
        return self.servers[0].metrics()

    def live_runs(self):
        return self.servers[0].live_runs()

    def wait_drained(self, timeout):
        return self.servers[0].wait_drained(timeout)

    def runs(self, flow_id, max_pages=1000):
        return self.servers[0].runs(flow_id, max_pages)

    def cpu(self):
        return sum(s.cpu() for s in self.servers)

    def peak_rss_mb(self):
        # The largest process: the ≤ 150 MiB target is per server process.
        return max(s.peak_rss_mb() for s in self.servers)

    def rss_mb(self):
        return max(s.rss_mb() for s in self.servers)

    def stop(self):
        for s in self.servers:
            s.stop()
        psql(self.admin_url, f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


def psql(url, statement):
    subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-c", statement], check=True,
                   stdout=subprocess.DEVNULL)


class RssSampler:
    """Largest resident size of the server (largest process of a cluster) while a workload
    runs, sampled every 100 ms: `VmHWM` would also count the plugin compilation at start-up."""

    def __init__(self, srv):
        self.srv, self.peak, self.stopped = srv, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                self.peak = max(self.peak, self.srv.rss_mb())
            except Exception:
                pass
            self.stopped.wait(0.1)

    def stop(self):
        self.stopped.set()
        self.thread.join()
        return self.peak


def make_server(args, label):
    if args.db == "postgres":
        return Cluster(args.bin, label, args.procs, args.pg_url)
    if args.procs != 1:
        raise SystemExit("--procs > 1 needs --db postgres (SQLite is one process)")
    return Server(args.bin, label)


# ---------------------------------------------------------------------------------------------
# load generator


def run_load(oha, urls, body_path, *, duration=None, n=None, conns=64, qps=None):
    """`run_oha` against every URL at once (connections, requests and rate split evenly), with
    the reports merged: counts add up, time is the longest, percentiles are the worst."""
    if len(urls) == 1:
        return run_oha(oha, urls[0], body_path, duration=duration, n=n, conns=conns, qps=qps)
    k = len(urls)
    results = [None] * k

    def one(i):
        results[i] = run_oha(oha, urls[i], body_path, duration=duration,
                             n=(n // k + (1 if i < n % k else 0)) if n else None,
                             conns=max(1, conns // k), qps=max(1, round(qps / k)) if qps else None)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    merged = {"wall_s": max(r["wall_s"] for r in results),
              "total_s": max(r["total_s"] for r in results),
              "requests_per_s": sum(r["requests_per_s"] for r in results),
              "success_rate": min(r["success_rate"] for r in results),
              "status_codes": {}, "errors": {},
              "p50_ms": max(r["p50_ms"] for r in results),
              "p99_ms": max(r["p99_ms"] for r in results),
              "p999_ms": max(r["p999_ms"] for r in results)}
    for r in results:
        for key in ("status_codes", "errors"):
            for code, count in r[key].items():
                merged[key][code] = merged[key].get(code, 0) + count
    return merged


def run_oha(oha, url, body_path, *, duration=None, n=None, conns=64, qps=None):
    cmd = [oha, "--no-tui", "--output-format", "json", "-c", str(conns), "-m", "POST",
           "-H", "content-type: application/json", "-D", body_path]
    if duration:
        cmd += ["-z", f"{duration}s"]
    if n:
        cmd += ["-n", str(n)]
    if qps:
        cmd += ["-q", str(qps)]
    cmd.append(url)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = b"", b""
    try:
        out, err = proc.communicate(timeout=(duration or 120) + 120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise RuntimeError("oha did not finish in time")
    wall = time.monotonic() - started
    # rusage of the reaped child: communicate() reaped it, so use the children totals delta
    if proc.returncode != 0:
        raise RuntimeError(f"oha failed ({proc.returncode}): {err.decode()[:2000]}")
    report = json.loads(out)
    summary = report["summary"]
    codes = {str(k): v for k, v in report.get("statusCodeDistribution", {}).items()}
    pct = report.get("latencyPercentiles", {})
    return {
        "wall_s": wall,
        "total_s": summary.get("total"),
        "requests_per_s": summary.get("requestsPerSec"),
        "success_rate": summary.get("successRate"),
        "status_codes": codes,
        "errors": report.get("errorDistribution", {}),
        "p50_ms": (pct.get("p50") or 0) * 1e3,
        "p99_ms": (pct.get("p99") or 0) * 1e3,
        "p999_ms": (pct.get("p99.9") or 0) * 1e3,
    }


class Perf:
    """Optional `perf record` of the server during a workload (--perf)."""

    def __init__(self, args, pid, name):
        self.proc = None
        if not args.perf or not shutil.which("perf"):
            return
        self.path = os.path.join(args.out, f"perf-{name}.data")
        self.proc = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(pid),
                                      "-o", self.path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def children_cpu():
    r = os.times()
    return r.children_user + r.children_system


# ---------------------------------------------------------------------------------------------
# helpers


def ts(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    i = round((len(values) - 1) * p)
    return values[i]


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def write_body(path):
    body = event_body()
    with open(path, "w") as f:
        f.write(body)
    return len(body.encode())


# ---------------------------------------------------------------------------------------------
# workloads


def workload_floor(args, body_path):
    """The HTTP floor: `hookflow-floor` (bench/floor) under exactly the load of (a): same oha
    command(s), body, connections and duration. With `--db postgres --procs k`, (a) runs k ohas
    of conns/k connections each; the floor then gets the same k ohas, on its one process."""
    srv = Server(args.floor_bin, "floor", argv=[args.floor_bin, "--listen", "127.0.0.1:0"])
    try:
        k = args.procs if args.db == "postgres" else 1
        urls = [srv.base + "/v1/webhooks/floor"] * k
        cpu0, thr0, ch0 = srv.cpu(), proc_threads(srv.pid), children_cpu()
        rss = RssSampler(srv)
        load = run_load(args.oha, urls, body_path, duration=args.intake_secs, conns=args.conns)
        cpu_load, thr1, oha_cpu = srv.cpu() - cpu0, proc_threads(srv.pid), children_cpu() - ch0
        rss_under_load = rss.stop()
        accepted = load["status_codes"].get("202", 0)
        return {
            "requests_202": accepted,
            "non_202": {k: v for k, v in load["status_codes"].items() if k != "202"},
            "errors": load["errors"],
            "requests_per_s": accepted / load["total_s"],
            "p50_ms": load["p50_ms"],
            "p99_ms": load["p99_ms"],
            "p999_ms": load["p999_ms"],
            "duration_s": load["total_s"],
            "oha_processes": k,
            "server_cpu_s_during_load": cpu_load,
            "server_cpu_us_per_request": cpu_load / max(accepted, 1) * 1e6,
            "oha_cpu_s": oha_cpu,
            "peak_rss_mb": srv.peak_rss_mb(),
            "rss_under_load_mb": rss_under_load,
            "thread_cpu_split_during_load": thread_split(thr0, thr1),
        }
    finally:
        srv.stop()


def workload_intake(args, body_path):
    srv = make_server(args, "intake")
    try:
        flow = srv.create_flow(INTAKE_FLOW)
        urls = srv.urls(f"/v1/webhooks/{flow}")
        cpu0, thr0, ch0 = srv.cpu(), proc_threads(srv.pid), children_cpu()
        perf = Perf(args, srv.pid, "intake")
        rss = RssSampler(srv)
        load = run_load(args.oha, urls, body_path, duration=args.intake_secs, conns=args.conns)
        perf.stop()
        cpu_load, thr1, oha_cpu = srv.cpu() - cpu0, proc_threads(srv.pid), children_cpu() - ch0
        backlog = srv.live_runs()
        drained, drain_s = srv.wait_drained(120)
        rss_under_load = rss.stop()
        m = srv.metrics()
        accepted = load["status_codes"].get("202", 0)
        res = {
            "events_202": accepted,
            "non_202": {k: v for k, v in load["status_codes"].items() if k != "202"},
            "errors": load["errors"],
            "events_per_s": accepted / load["total_s"],
            "p50_ms": load["p50_ms"],
            "p99_ms": load["p99_ms"],
            "p999_ms": load["p999_ms"],
            "duration_s": load["total_s"],
            "server_events_accepted": m.get('hookflow_events_total{outcome="accepted"}'),
            "backlog_at_end": backlog,
            "drain_s": drain_s,
            "drained": drained,
            "server_cpu_s_during_load": cpu_load,
            "server_cpu_us_per_event": cpu_load / max(accepted, 1) * 1e6,
            "oha_cpu_s": oha_cpu,
            "server_cpu_total_s": srv.cpu(),
            "peak_rss_mb": srv.peak_rss_mb(),
            "rss_under_load_mb": rss_under_load,
            "thread_cpu_split_during_load": thread_split(thr0, thr1),
        }
        return res
    finally:
        srv.stop()


def workload_throughput(args, body_path):
    srv = make_server(args, "throughput")
    try:
        flow = srv.create_flow(ROUTER_FLOW)
        urls = srv.urls(f"/v1/webhooks/{flow}")
        cpu0, thr0, ch0 = srv.cpu(), proc_threads(srv.pid), children_cpu()
        perf = Perf(args, srv.pid, "throughput")
        rss = RssSampler(srv)
        t0 = time.monotonic()
        load = run_load(args.oha, urls, body_path, n=args.n, conns=args.conns)
        oha_cpu = children_cpu() - ch0
        backlog = srv.live_runs()
        drained, drain_s = srv.wait_drained(args.drain_timeout)
        wall = time.monotonic() - t0
        rss_under_load = rss.stop()
        perf.stop()
        cpu_used, thr1 = srv.cpu() - cpu0, proc_threads(srv.pid)
        runs = srv.runs(flow)
        statuses = {}
        for r in runs:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        done = [r for r in runs if r.get("finished")]
        first = min(ts(r["created"]) for r in runs)
        last = max(ts(r["finished"]) for r in done)
        accepted = load["status_codes"].get("202", 0)
        e2e = [(ts(r["finished"]) - ts(r["created"])) * 1e3 for r in done]
        return {
            "events_sent": args.n,
            "events_202": accepted,
            "non_202": {k: v for k, v in load["status_codes"].items() if k != "202"},
            "errors": load["errors"],
            "intake_events_per_s": accepted / load["total_s"],
            "intake_p50_ms": load["p50_ms"],
            "intake_p99_ms": load["p99_ms"],
            "backlog_when_firing_ended": backlog,
            "drained": drained,
            "runs_found": len(runs),
            "statuses": statuses,
            "span_s": last - first,
            "completed_runs_per_s": len(done) / (last - first),
            "n_over_span_runs_per_s": args.n / (last - first),
            "wall_s": wall,
            "e2e_p50_ms_under_overload": percentile(e2e, 0.5),
            "e2e_max_ms_under_overload": max(e2e) if e2e else None,
            "server_cpu_s": cpu_used,
            "server_cpu_us_per_run": cpu_used / max(len(done), 1) * 1e6,
            "oha_cpu_s": oha_cpu,
            "peak_rss_mb": srv.peak_rss_mb(),
            "rss_under_load_mb": rss_under_load,
            "thread_cpu_split": thread_split(thr0, thr1),
        }
    finally:
        srv.stop()


def workload_latency(args, body_path):
    srv = make_server(args, "latency")
    try:
        flow = srv.create_flow(ROUTER_FLOW)
        urls = srv.urls(f"/v1/webhooks/{flow}")
        # a short warm-up so the first instantiations/pages are not in the sample
        run_load(args.oha, urls, body_path, n=200, conns=4)
        srv.wait_drained(30)
        warm_ids = {r["id"] for r in srv.runs(flow)}
        cpu0, thr0, ch0 = srv.cpu(), proc_threads(srv.pid), children_cpu()
        load = run_load(args.oha, urls, body_path, duration=args.latency_secs, conns=args.conns,
                       qps=args.rate)
        oha_cpu = children_cpu() - ch0
        drained, drain_s = srv.wait_drained(120)
        cpu_used, thr1 = srv.cpu() - cpu0, proc_threads(srv.pid)
        runs = [r for r in srv.runs(flow) if r["id"] not in warm_ids]
        done = [r for r in runs if r.get("finished")]
        e2e = [(ts(r["finished"]) - ts(r["created"])) * 1e3 for r in done]
        statuses = {}
        for r in runs:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        accepted = load["status_codes"].get("202", 0)
        return {
            "target_rate": args.rate,
            "events_202": accepted,
            "non_202": {k: v for k, v in load["status_codes"].items() if k != "202"},
            "achieved_rate": accepted / load["total_s"],
            "runs_measured": len(e2e),
            "statuses": statuses,
            "drained": drained,
            "e2e_p50_ms": percentile(e2e, 0.50),
            "e2e_p90_ms": percentile(e2e, 0.90),
            "e2e_p99_ms": percentile(e2e, 0.99),
            "e2e_max_ms": max(e2e) if e2e else None,
            "intake_p50_ms": load["p50_ms"],
            "intake_p99_ms": load["p99_ms"],
            "server_cpu_s": cpu_used,
            "server_cpu_util_pct": cpu_used / load["total_s"] * 100,
            "oha_cpu_s": oha_cpu,
            "peak_rss_mb": srv.peak_rss_mb(),
            "thread_cpu_split": thread_split(thr0, thr1),
        }
    finally:
        srv.stop()


# The event mix of workload (d): run lifecycle dominates real Activepieces audit streams.
MIX = [
    ("flow.run.finished", "FAILED", 20),
    ("flow.run.finished", "SUCCEEDED", 25),
    ("flow.run.started", None, 30),
    ("user.signed.in", None, 8),
    ("flow.updated", None, 5),
    ("flow.published", None, 4),
    ("connection.upserted", None, 4),
    ("project.role.updated", None, 2),
    ("folder.created", None, 2),
]


def workload_handler(args, body_path):
    """(d) The generated handler flow for every Activepieces event, fed a realistic mix."""
    srv = make_server(args, "handler")
    try:
        types = srv.servers[0] if isinstance(srv, Cluster) else srv
        catalog = types.request("GET", "/v1/event-types?source=activepieces")["data"]
        names = [e["name"] for e in catalog]
        samples = {e["name"]: e["sample"] for e in catalog}
        flow = types.request("POST", "/v1/handler-flows",
                             {"events": names, "source": "activepieces"})["id"]
        urls = srv.urls(f"/v1/webhooks/{flow}")
        total_weight = sum(w for _, _, w in MIX)
        jobs = []
        for i, (name, status, weight) in enumerate(MIX):
            event = json.loads(json.dumps(samples[name]))
            event.pop("id", None)
            if status:
                event["data"]["flowRun"]["status"] = status
            path = os.path.join(args.out, f"mix-{i}.json")
            with open(path, "w") as f:
                json.dump(event, f, separators=(",", ":"))
            n = max(1, args.n * weight // total_weight)
            conns = max(1, args.conns * weight // total_weight)
            jobs.append((urls[i % len(urls)], path, n, conns))
        cpu0, ch0 = srv.cpu(), children_cpu()
        rss = RssSampler(srv)
        results = [None] * len(jobs)

        def one(i):
            url, path, n, conns = jobs[i]
            results[i] = run_oha(args.oha, url, path, n=n, conns=conns)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        oha_cpu = children_cpu() - ch0
        drained, _ = srv.wait_drained(args.drain_timeout)
        rss_under_load = rss.stop()
        cpu_used = srv.cpu() - cpu0
        sent = sum(j[2] for j in jobs)
        accepted = sum(r["status_codes"].get("202", 0) for r in results)
        runs = srv.runs(flow)
        done = [r for r in runs if r.get("finished")]
        statuses = {}
        for r in runs:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        first = min(ts(r["created"]) for r in runs)
        last = max(ts(r["finished"]) for r in done)
        e2e = [(ts(r["finished"]) - ts(r["created"])) * 1e3 for r in done]
        return {
            "events_sent": sent,
            "events_202": accepted,
            "event_types": len(names),
            "mix": {f"{n}{'/' + st if st else ''}": w for n, st, w in MIX},
            "drained": drained,
            "statuses": statuses,
            "span_s": last - first,
            "completed_runs_per_s": len(done) / (last - first),
            "intake_p50_ms": max(r["p50_ms"] for r in results),
            "intake_p99_ms": max(r["p99_ms"] for r in results),
            "e2e_p50_ms_under_overload": percentile(e2e, 0.5),
            "e2e_p99_ms_under_overload": percentile(e2e, 0.99),
            "server_cpu_s": cpu_used,
            "server_cpu_us_per_run": cpu_used / max(len(done), 1) * 1e6,
            "oha_cpu_s": oha_cpu,
            "rss_under_load_mb": rss_under_load,
            "peak_rss_mb": srv.peak_rss_mb(),
        }
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------
# report


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def verdict(ok):
    return "**met**" if ok else "**MISSED**"


def ratio(x, y):
    """x / y, or None when either is missing or y is 0."""
    if x is None or y in (None, 0):
        return None
    return x / y


def floor_ratios(results):
    """(a) intake as multiples of the HTTP floor measured in the same run: throughput (share of
    the floor's requests/s), latency and server CPU per request (how many times the floor's)."""
    fl, a = results.get("floor"), results.get("intake")
    if not fl or not a:
        return None
    return {"throughput": ratio(a["events_per_s"], fl["requests_per_s"]),
            "p50": ratio(a["p50_ms"], fl["p50_ms"]),
            "p99": ratio(a["p99_ms"], fl["p99_ms"]),
            "cpu_per_request": ratio(a["server_cpu_us_per_event"], fl["server_cpu_us_per_request"])}


def times(v, digits=2):
    return "n/a" if v is None else f"{v:,.{digits}f}×"


def markdown(results):
    rows = ["| workload | figure | value | target | met? |", "| --- | --- | --- | --- | --- |"]
    sb = results.get("sandbox")
    if sb:
        rows += [
            f"| sandbox | instantiate+call `log@0.1.0`, median | {fmt(sb['median_us'])} µs | ≤ 30 µs | {verdict(sb['median_us'] <= 30)} |",
            f"| sandbox | p90 / p99 | {fmt(sb['p90_us'])} / {fmt(sb['p99_us'])} µs | | |",
            f"| sandbox | mean (→ calls/s on one task) | {fmt(sb['mean_us'])} µs ({fmt(1e6 / sb['mean_us'], 0)}/s) | | |",
        ]
    fl = results.get("floor")
    if fl:
        rows += [
            f"| HTTP floor | requests/s (202s only, {fmt(fl['duration_s'])} s, {results['conns']} conns; same oha as (a)) | {fmt(fl['requests_per_s'], 0)} | | |",
            f"| HTTP floor | request latency p50 / p99 | {fmt(fl['p50_ms'], 2)} / {fmt(fl['p99_ms'], 2)} ms | | |",
            f"| HTTP floor | 202s / other statuses / errors | {fmt(fl['requests_202'])} / {fl['non_202'] or 0} / {fl['errors'] or 0} | | |",
            f"| HTTP floor | server CPU during load (µs/request) / oha CPU | {fmt(fl['server_cpu_s_during_load'])} s ({fmt(fl['server_cpu_us_per_request'])}) / {fmt(fl['oha_cpu_s'])} s | | |",
            f"| HTTP floor | resident memory under load / peak | {fmt(fl['rss_under_load_mb'])} / {fmt(fl['peak_rss_mb'])} MiB | | |",
        ]
    a = results.get("intake")
    if a:
        rows += [
            f"| (a) intake | events/s (202s only, {fmt(a['duration_s'])} s, {results['conns']} conns) | {fmt(a['events_per_s'], 0)} | ≥ 10,000 | {verdict(a['events_per_s'] >= 10000)} |",
            f"| (a) intake | request latency p50 / p99 | {fmt(a['p50_ms'], 2)} / {fmt(a['p99_ms'], 2)} ms | | |",
            f"| (a) intake | 202s / other statuses / errors | {fmt(a['events_202'])} / {a['non_202'] or 0} / {a['errors'] or 0} | | |",
            f"| (a) intake | server CPU during load (µs/event) | {fmt(a['server_cpu_s_during_load'])} s ({fmt(a['server_cpu_us_per_event'])}) | | |",
            f"| (a) intake | oha CPU during load | {fmt(a['oha_cpu_s'])} s | | |",
            f"| (a) intake | server CPU total (incl. start, drain) / peak RSS incl. start-up | {fmt(a['server_cpu_total_s'])} s / {fmt(a['peak_rss_mb'])} MiB | | |",
            f"| (a) intake | resident memory under load (largest process) | {fmt(a['rss_under_load_mb'])} MiB | ≤ 150 MiB | {verdict(a['rss_under_load_mb'] <= 150)} |",
        ]
        fr = floor_ratios(results)
        if fr:
            rows.append(
                f"| (a) / floor | events/s as a share of the floor's requests/s · p50 · p99 · server CPU per request | "
                f"{times(fr['throughput'])} · {times(fr['p50'], 1)} · {times(fr['p99'], 1)} · {times(fr['cpu_per_request'], 1)} | | |")
    b = results.get("throughput")
    if b:
        rows += [
            f"| (b) router+plugin | completed runs/s = N / (last finish − first accept) | {fmt(b['n_over_span_runs_per_s'], 0)} | ≥ 3,000 | {verdict(b['n_over_span_runs_per_s'] >= 3000)} |",
            f"| (b) router+plugin | N / span / statuses | {fmt(b['events_sent'])} / {fmt(b['span_s'], 2)} s / {b['statuses']} | | |",
            f"| (b) router+plugin | intake rate while firing / backlog when firing ended | {fmt(b['intake_events_per_s'], 0)}/s / {fmt(b['backlog_when_firing_ended'])} | | |",
            f"| (b) router+plugin | server CPU (µs/run) / oha CPU | {fmt(b['server_cpu_s'])} s ({fmt(b['server_cpu_us_per_run'])}) / {fmt(b['oha_cpu_s'])} s | | |",
            f"| (b) router+plugin | resident memory under load (largest process) / peak incl. start-up | {fmt(b['rss_under_load_mb'])} / {fmt(b['peak_rss_mb'])} MiB | ≤ 150 MiB | {verdict(b['rss_under_load_mb'] <= 150)} |",
        ]
    c = results.get("latency")
    if c:
        rows += [
            f"| (c) {c['target_rate']}/s | achieved rate / runs measured | {fmt(c['achieved_rate'], 0)}/s / {fmt(c['runs_measured'])} | | |",
            f"| (c) {c['target_rate']}/s | end-to-end p50 (finished − created) | {fmt(c['e2e_p50_ms'], 1)} ms | ≤ 5 ms | {verdict(c['e2e_p50_ms'] is not None and c['e2e_p50_ms'] <= 5)} |",
            f"| (c) {c['target_rate']}/s | end-to-end p99 | {fmt(c['e2e_p99_ms'], 1)} ms | ≤ 50 ms | {verdict(c['e2e_p99_ms'] is not None and c['e2e_p99_ms'] <= 50)} |",
            f"| (c) {c['target_rate']}/s | end-to-end p90 / max | {fmt(c['e2e_p90_ms'], 1)} / {fmt(c['e2e_max_ms'], 1)} ms | | |",
            f"| (c) {c['target_rate']}/s | HTTP p50 / p99 | {fmt(c['intake_p50_ms'], 2)} / {fmt(c['intake_p99_ms'], 2)} ms | | |",
            f"| (c) {c['target_rate']}/s | server CPU (utilisation of one core) / peak RSS | {fmt(c['server_cpu_s'])} s ({fmt(c['server_cpu_util_pct'], 0)} %) / {fmt(c['peak_rss_mb'])} MiB | | |",
        ]
    d = results.get("handler")
    if d:
        rows += [
            f"| (d) handler flow, {d['event_types']} event types | completed runs/s (mix of {len(d['mix'])} events) | {fmt(d['completed_runs_per_s'], 0)} | | |",
            f"| (d) handler flow | N / span / statuses | {fmt(d['events_sent'])} / {fmt(d['span_s'], 2)} s / {d['statuses']} | | |",
            f"| (d) handler flow | HTTP p50 / p99 (worst sender) | {fmt(d['intake_p50_ms'], 2)} / {fmt(d['intake_p99_ms'], 2)} ms | | |",
            f"| (d) handler flow | server CPU (µs/run) / oha CPU | {fmt(d['server_cpu_s'])} s ({fmt(d['server_cpu_us_per_run'])}) / {fmt(d['oha_cpu_s'])} s | | |",
            f"| (d) handler flow | resident memory under load / peak incl. start-up | {fmt(d['rss_under_load_mb'])} / {fmt(d['peak_rss_mb'])} MiB | ≤ 150 MiB | {verdict(d['rss_under_load_mb'] <= 150)} |",
        ]
    lines = [f"Database: {results.get('db', 'sqlite')}, server processes: {results.get('procs', 1)}.", ""] + rows + [""]
    for key in ("floor", "intake", "throughput", "latency"):
        r = results.get(key)
        if r:
            split = r.get("thread_cpu_split") or r.get("thread_cpu_split_during_load")
            lines.append(f"- server CPU by thread, {key} (user s, sys s): "
                         + ", ".join(f"`{k}` {u}/{s}" for k, (u, s) in split.items()))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# before/after comparison (bench/compare.sh): reads the results.json files of two runs

COMPARE_SETS = ("sqlite", "postgres-1", "postgres-3")
# (workload, figure, key, better, vs floor): better "+" = higher is better, "-" = lower;
# vs floor: "rate" = figure / floor requests/s, "p50"/"p99" = figure / the floor's same
# percentile, "cpu" = figure / floor CPU µs per request, None = no floor comparison
COMPARE_ROWS = [
    ("floor", "HTTP floor requests/s", "requests_per_s", "+", None),
    ("floor", "HTTP floor p50 ms", "p50_ms", "-", None),
    ("floor", "HTTP floor p99 ms", "p99_ms", "-", None),
    ("floor", "HTTP floor server CPU µs/request", "server_cpu_us_per_request", "-", None),
    ("intake", "(a) intake events/s", "events_per_s", "+", "rate"),
    ("intake", "(a) intake p50 ms", "p50_ms", "-", "p50"),
    ("intake", "(a) intake p99 ms", "p99_ms", "-", "p99"),
    ("intake", "(a) intake server CPU µs/event", "server_cpu_us_per_event", "-", "cpu"),
    ("intake", "(a) intake RSS under load MiB", "rss_under_load_mb", "-", None),
    ("throughput", "(b) completed runs/s", "n_over_span_runs_per_s", "+", "rate"),
    ("throughput", "(b) intake events/s while firing", "intake_events_per_s", "+", "rate"),
    ("throughput", "(b) server CPU µs/run", "server_cpu_us_per_run", "-", "cpu"),
    ("throughput", "(b) RSS under load MiB", "rss_under_load_mb", "-", None),
    ("latency", "(c) achieved rate /s", "achieved_rate", "+", None),
    ("latency", "(c) end-to-end p50 ms", "e2e_p50_ms", "-", None),
    ("latency", "(c) end-to-end p99 ms", "e2e_p99_ms", "-", None),
    ("latency", "(c) end-to-end max ms", "e2e_max_ms", "-", None),
    ("latency", "(c) HTTP p99 ms", "intake_p99_ms", "-", None),
    ("latency", "(c) server CPU, % of one core", "server_cpu_util_pct", "-", None),
]
FLOOR_KEY = {"rate": "requests_per_s", "p50": "p50_ms", "p99": "p99_ms",
             "cpu": "server_cpu_us_per_request"}


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def problems(r):
    """Non-2xx answers and client errors of a workload (they make its figures suspect). oha's
    "aborted due to deadline" (the requests in flight when `-z` ends) is expected, not listed."""
    bad = dict(r.get("non_202") or {})
    bad.update({k: v for k, v in (r.get("errors") or {}).items() if k != "aborted due to deadline"})
    statuses = r.get("statuses") or {}
    bad.update({f"run {k}": v for k, v in statuses.items() if k != "SUCCEEDED"})
    if r.get("drained") is False:
        bad["not drained"] = 1
    return bad


def compare(before_dir, after_dir):
    """Markdown: every figure of two runs side by side, after/before, and each against the HTTP
    floor of its own run. Sets: SQLite, PostgreSQL x1/x3 (as present), peers.py W1 /sync."""
    out = [f"# hookflow before/after — {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}", ""]
    sides = {}
    for name, d in (("before", before_dir), ("after", after_dir)):
        sides[name] = {s: read_json(os.path.join(d, s, "results.json")) for s in COMPARE_SETS}
        sides[name]["peers"] = read_json(os.path.join(d, "peers", "peers.json"))
        if not any(sides[name].values()):
            raise SystemExit(f"--compare: no results.json under {d}/{{{','.join(COMPARE_SETS)}}}/ "
                             f"nor {d}/peers/peers.json")
        first = next((r for r in sides[name].values() if r), None) or {}
        out.append(f"- **{name}**: `{d}`; binary `{first.get('bin', '?')}`"
                   + (f" (sha256 {first['bin_sha256'][:12]})" if first.get("bin_sha256") else ""))
        for s in COMPARE_SETS:
            r = sides[name][s]
            if r:
                out.append(f"  - {s}: {r.get('date', '?')}, load average before / after "
                           f"{r.get('loadavg_start', '?')} / {r.get('loadavg_end', '?')}")
    out += ["", "↑ = higher is better, ↓ = lower is better. *vs floor*: throughput as a share of the "
            "HTTP floor's requests/s, latency and CPU per request as multiples of the floor's, the "
            "floor being measured in the same bench.py run as the figure (same side, same set).", "",
            "| set | figure | before | after | after / before | before vs floor | after vs floor |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    notes = []
    for s in COMPARE_SETS:
        b, a = sides["before"][s], sides["after"][s]
        if not b and not a:
            continue
        for wl, label, key, better, vs in COMPARE_ROWS:
            rb, ra = (b or {}).get(wl), (a or {}).get(wl)
            if not rb and not ra:
                continue
            vb, va = (rb or {}).get(key), (ra or {}).get(key)

            def vs_floor(side, v):
                fl = (side or {}).get("floor")
                return ratio(v, fl.get(FLOOR_KEY[vs])) if (vs and fl) else None

            digits = 2 if key.endswith("_ms") else 0 if key.endswith("_per_s") or key == "achieved_rate" else 1
            out.append(f"| {s} | {label} {'↑' if better == '+' else '↓'} | {fmt(vb, digits)} | "
                       f"{fmt(va, digits)} | {times(ratio(va, vb))} | "
                       f"{times(vs_floor(b, vb)) if vs else ''} | {times(vs_floor(a, va)) if vs else ''} |")
        for name, r in (("before", b), ("after", a)):
            for wl in ("floor", "intake", "throughput", "latency"):
                bad = problems((r or {}).get(wl) or {})
                if bad:
                    notes.append(f"- {s} {name} {wl}: {bad}")
    pb, pa = sides["before"]["peers"], sides["after"]["peers"]
    if pb or pa:
        def w1(res, system):
            for r in (res or {}).get("runs", []):
                if r.get("system") == system and r.get("workload") == "w1" and "error" not in r:
                    return r
            return None

        for label, system, key, better, digits in (
                ("/sync W1 hookflow req/s", "hookflow", "requests_per_s", "+", 0),
                ("/sync W1 hookflow p99 ms", "hookflow", "p99_ms", "-", 2),
                ("/sync W1 hookflow server CPU ms/req", "hookflow", "server_cpu_ms_per_req", "-", 3),
                ("/sync W1 Node-RED req/s", "node-red", "requests_per_s", "+", 0),
                ("/sync W1 Node-RED p99 ms", "node-red", "p99_ms", "-", 2)):
            vb, va = (w1(pb, system) or {}).get(key), (w1(pa, system) or {}).get(key)
            fb = ((sides["before"]["sqlite"] or {}).get("floor") or {}).get("requests_per_s")
            fa = ((sides["after"]["sqlite"] or {}).get("floor") or {}).get("requests_per_s")
            rate = key == "requests_per_s" and system == "hookflow"
            out.append(f"| peers | {label} {'↑' if better == '+' else '↓'} | {fmt(vb, digits)} | {fmt(va, digits)} | "
                       f"{times(ratio(va, vb))} | {times(ratio(vb, fb)) if rate else ''} | "
                       f"{times(ratio(va, fa)) if rate else ''} |")
        hb, nb = w1(pb, "hookflow"), w1(pb, "node-red")
        ha, na = w1(pa, "hookflow"), w1(pa, "node-red")
        rb = ratio((hb or {}).get("requests_per_s"), (nb or {}).get("requests_per_s"))
        ra = ratio((ha or {}).get("requests_per_s"), (na or {}).get("requests_per_s"))
        out.append(f"| peers | /sync W1 hookflow / Node-RED (same side) ↑ | {times(rb)} | {times(ra)} | "
                   f"{times(ratio(ra, rb))} | | |")
        if pb or pa:
            out.append("")
            out.append("(peers: W1 = `oha -c 64 -z SECS` on `/v1/webhooks/{flow}/sync`; hookflow's "
                       "*vs floor* uses the SQLite set's floor of the same side, measured minutes apart.)")
        for name, res in (("before", pb), ("after", pa)):
            for r in (res or {}).get("runs", []):
                if "error" in r:
                    notes.append(f"- peers {name} {r['system']} {r['workload']}: {r['error'][:200]}")
                elif r.get("errors_total"):
                    notes.append(f"- peers {name} {r['system']} {r['workload']}: {r['errors_total']} errors/non-200")
    if notes:
        out += ["", "Problems (non-2xx answers, client errors, runs not SUCCEEDED, not drained):", ""] + notes
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "hookflow"))
    ap.add_argument("--floor-bin", default=os.path.join(HERE, "floor", "target", "release", "hookflow-floor"),
                    help="the HTTP floor server (cargo build --release --manifest-path bench/floor/Cargo.toml)")
    ap.add_argument("--oha", default="oha")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--only", default="floor,a,b,c,d", help="workloads: floor,a,b,c,d (floor runs first)")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE_DIR", "AFTER_DIR"),
                    help="no load: print the side-by-side table of two compare.sh result dirs")
    ap.add_argument("--compare-out", help="also write the --compare table to this file")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--intake-secs", type=int, default=10)
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--drain-timeout", type=int, default=300)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--latency-secs", type=int, default=10)
    ap.add_argument("--perf", action="store_true", help="perf record the server in (a) and (b)")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--procs", type=int, default=1, help="server processes (PostgreSQL only)")
    ap.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/postgres",
                    help="admin URL; each workload creates and drops its own database")
    ap.add_argument("--sandbox-json", help="file with the BENCH_SANDBOX line of bench_sandbox")
    args = ap.parse_args()
    if args.compare:
        md = compare(*args.compare)
        if args.compare_out:
            with open(args.compare_out, "w") as f:
                f.write(md)
        print(md)
        return 0
    only = set(args.only.split(","))
    unknown = only - {"floor", "a", "b", "c", "d"}
    if unknown:
        raise SystemExit(f"--only: unknown workloads {sorted(unknown)}; known: floor,a,b,c,d")
    if "floor" in only and not os.path.isfile(args.floor_bin):
        raise SystemExit(f"no floor binary at {args.floor_bin}: build it with "
                         "cargo build --release --manifest-path bench/floor/Cargo.toml, or pass --floor-bin")
    os.makedirs(args.out, exist_ok=True)
    body_path = os.path.join(args.out, "event.json")
    size = write_body(body_path)
    results = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "body_bytes": size, "conns": args.conns, "db": args.db, "procs": args.procs,
               "bin": os.path.abspath(args.bin), "bin_sha256": sha256_file(args.bin),
               "loadavg_start": loadavg()}
    print(f"event body: {size} bytes ({body_path})", flush=True)
    if args.sandbox_json and os.path.exists(args.sandbox_json):
        with open(args.sandbox_json) as f:
            for line in f:
                if line.startswith("BENCH_SANDBOX "):
                    results["sandbox"] = json.loads(line.split(" ", 1)[1])
    for key, name, fn in (("floor", "floor", workload_floor),
                          ("a", "intake", workload_intake),
                          ("b", "throughput", workload_throughput),
                          ("c", "latency", workload_latency),
                          ("d", "handler", workload_handler)):
        if key in only:
            print(f"== ({key}) {name} ...", flush=True)
            results[name] = fn(args, body_path)
            print(json.dumps(results[name], indent=1), flush=True)
    results["loadavg_end"] = loadavg()
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    md = markdown(results)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    sys.exit(main())
