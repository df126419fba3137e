#!/usr/bin/env python3
"""hookflow side by side with n8n and Node-RED on this machine (Python 3.11 stdlib only).

Every system gets the equivalent flow, webhook -> condition on the event's `action` -> respond:

  hookflow  webhook flow, first-match router on {{trigger.body.action}} TEXT_EXACTLY_MATCHES
            flow.run.finished -> respond@0.1.0 {status 200, body {ok: true}}; Otherwise -> respond
            404. POST /v1/webhooks/{flowId}/sync answers when the run has finished.
  n8n       Webhook (respond: using Respond to Webhook node) -> If ($json.body.action equals
            flow.run.finished) -> Respond to Webhook 200 {"ok": true} / 404 (bench/peers/n8n-workflow.json)
  Node-RED  http in -> switch (msg.payload.action == flow.run.finished) -> change (payload,
            statusCode) -> http response (bench/peers/node-red-flows.json)

Each (system, workload) runs against a fresh server in a new temporary directory: start, load
the flow, check one request answers 200 {"ok": true}, warm up, then measure with oha:

  W1 throughput  oha -c CONNS -z SECS   (closed loop, as fast as each system answers)
  W1low          the same at -c CONNS_LOW (Node.js servers do best at low concurrency)
  W2 latency     oha -c CONNS -q RATE -z SECS (a rate every system sustains; lowered
                 automatically to half the slowest system's best W1 if RATE is above that;
                 then W2b runs RATE itself for the systems whose W1 is at least 2x RATE)
  W3 (hookflow only, for reference) async intake POST /v1/webhooks/{flowId} -> 202, runs
                 execute in the background; drained afterwards

Reference variants (W1 only, not in the ratios): hookflow-normal (SQLite synchronous=NORMAL)
and n8n-nosave (EXECUTIONS_DATA_SAVE_ON_SUCCESS=none).

For each: requests/s, p50/p99/p99.9, non-200 answers and errors, server CPU seconds during the
load (utime+stime of the server's process tree from /proc), peak RSS (VmHWM), oha's CPU, the
load average, and what the system kept as history (runs/executions stored, size on disk).

Usage: python3 bench/peers.py [--bin target/release/hookflow] [--oha oha] [--secs 10]
       [--conns 64] [--conns-low 8] [--rate 200] [--warmup-secs 5]
       [--only hookflow,node-red,n8n,hookflow-normal,n8n-nosave] [--workloads w1,w1low,w2,w3]
Writes bench/out/peers.json and bench/out/peers.md. Install the peers first:
bash bench/peers/install.sh
"""

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
NODE_MODULES = os.path.join(PEERS, "node_modules")
sys.path.insert(0, HERE)
import bench  # noqa: E402  (bench/bench.py: event body, /proc helpers, hookflow Server)

RESPOND_FLOW = {
    "name": "bench-respond",
    "trigger": {"type": "webhook"},
    "steps": [{
        "name": "route",
        "type": "router",
        "mode": "firstMatch",
        "branches": [
            {
                "name": "Finished",
                "when": [[{
                    "left": "{{trigger.body.action}}",
                    "operator": "TEXT_EXACTLY_MATCHES",
                    "right": "flow.run.finished",
                }]],
                "steps": [{
                    "name": "respond",
                    "type": "action",
                    "plugin": "respond@0.1.0",
                    "input": {"status": 200, "body": {"ok": True}},
                }],
            },
            {
                "name": "Otherwise",
                "fallback": True,
                "steps": [{
                    "name": "not_found",
                    "type": "action",
                    "plugin": "respond@0.1.0",
                    "input": {"status": 404, "body": {"ok": False}},
                }],
            },
        ],
    }],
}

SYSTEMS = ("hookflow", "node-red", "n8n")
# reference variants (not in the ratios): what durability / history costs each engine
VARIANTS = ("hookflow-normal", "n8n-nosave")
LABEL = {"hookflow": "hookflow", "node-red": "Node-RED", "n8n": "n8n",
         "hookflow-normal": "hookflow, synchronous=NORMAL (ref.)",
         "n8n-nosave": "n8n, successful executions not saved (ref.)"}


# ---------------------------------------------------------------------------------------------
# process tree sampling (node peers may fork; hookflow is one process)


def tree_pids(root):
    """root and all its descendants, from /proc/*/stat ppid links."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu(root):
    total = 0.0
    for pid in tree_pids(root):
        try:
            total += bench.proc_cpu(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def tree_peak_rss_mb(root):
    total = 0
    for pid in tree_pids(root):
        try:
            total += bench.proc_status(pid, "VmHWM") or 0
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1024


def machine_busy_s():
    """CPU seconds all processes on the machine have used (from /proc/stat: all but idle+iowait)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / bench.CLK_TCK


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def fsync_ms(directory, n=30):
    """Median and p90 latency of write(4 KiB)+fsync in `directory`: every system here commits
    through fsync (hookflow synchronous=FULL, n8n's SQLite journal), and it swings with the
    other disk traffic on a shared machine."""
    path = os.path.join(directory, f".fsync-probe-{os.getpid()}")
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t) * 1e3)
    finally:
        os.close(fd)
        os.remove(path)
    times.sort()
    return {"p50": round(times[len(times) // 2], 2), "p90": round(times[int(len(times) * 0.9)], 2)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dir_size_mb(path):
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(base, name))
            except OSError:
                pass
    return total / 1048576


def post(url, body, timeout=10):
    """(status, body text) of one POST; errors as (None, message)."""
    req = urllib.request.Request(url, data=body.encode(), method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def wait_answering(url, body, timeout, proc=None, expect=200):
    """Polls a POST until it answers `expect` (bounded); returns seconds waited."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before answering {url}")
        last = post(url, body, timeout=5)
        if last[0] == expect:
            return time.monotonic() - start
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer {expect} within {timeout} s (last: {last})")


def run_cmd(cmd, env, timeout, log):
    log.write(f"$ {' '.join(cmd)}\n".encode())
    log.flush()
    subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                   check=True, start_new_session=True)


# ---------------------------------------------------------------------------------------------
# systems: start fresh, flow loaded, url to POST to; history(); stop()


class NodeServer:
    """A Node.js peer in its own process group, stopped with SIGTERM then SIGKILL (bounded)."""

    def __init__(self, cmd, env, log_path, cwd):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid

    def stop(self, grace=20):
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything left in the group (forked helpers) goes too
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


def store_counts(db_path, status_query, counts):
    """A read-only look at a live SQLite database: runs by status, plus the named counts."""
    out = {}
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute(status_query).fetchall()
            out["runs_by_status"] = {status: n for status, n in rows}
            out["runs_total"] = sum(n for _, n in rows)
            for key, query in counts.items():
                out[key] = con.execute(query).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as e:
        out["error"] = str(e)
    return out


class Hookflow:
    name = "hookflow"
    keeps = ("every run: the event (body + headers), the run with its status and timing, each "
             "step's input/output/attempts and the router's branch evaluations, in SQLite "
             "(synchronous=FULL), committed before the answer; kept until deleted")

    extra_env = {}

    def __init__(self, args, body):
        self.srv = bench.Server(args.bin, "peers", extra_env=self.extra_env)
        self.pid = self.srv.pid
        plugins = self.srv.request("GET", "/v1/plugins")
        names = json.dumps(plugins)
        if "respond" not in names:
            self.srv.stop()
            raise RuntimeError("this hookflow binary has no respond plugin (GET /v1/plugins)")
        self.flow = self.srv.create_flow(RESPOND_FLOW)
        self.url = f"{self.srv.base}/v1/webhooks/{self.flow}/sync"
        self.async_url = f"{self.srv.base}/v1/webhooks/{self.flow}"
        self.dir = self.srv.dir

    def settle(self, timeout=60):
        return self.srv.wait_drained(timeout)[1]

    def history(self):
        """Runs, events and step results in the store (read-only look at the live WAL database),
        and the size of the data dir (database, WAL, compiled-plugin cache)."""
        out = {"store_mb": round(dir_size_mb(self.dir), 1)}
        out.update(store_counts(os.path.join(self.dir, "hookflow.db"),
                                "select status, count(*) from runs group by status",
                                {"events": "select count(*) from events",
                                 "step_results": "select count(*) from step_results"}))
        return out

    def stop(self):
        self.srv.stop()


class HookflowSyncNormal(Hookflow):
    """Reference: the same, with SQLite synchronous=NORMAL (survives a process crash, not a
    power loss): how much of the answer time is the fsync per commit."""
    name = "hookflow-normal"
    extra_env = {"HOOKFLOW_SQLITE_SYNCHRONOUS": "normal"}
    keeps = Hookflow.keeps.replace("synchronous=FULL", "synchronous=NORMAL")


class NodeRed:
    name = "node-red"
    keeps = "nothing: no run history, no durable record of the request (flow state is in memory)"

    def __init__(self, args, body):
        self.dir = tempfile.mkdtemp(prefix="hookflow-peers-node-red-")
        shutil.copy(os.path.join(PEERS, "node-red-flows.json"), os.path.join(self.dir, "flows.json"))
        port = free_port()
        env = dict(os.environ, NODE_RED_PORT=str(port), NODE_ENV="production")
        cmd = [args.node, os.path.join(NODE_MODULES, "node-red", "red.js"),
               "-u", self.dir, "-s", os.path.join(PEERS, "node-red-settings.js")]
        self.server = NodeServer(cmd, env, os.path.join(self.dir, "server.log"), self.dir)
        self.pid = self.server.pid
        self.url = f"http://127.0.0.1:{port}/bench"
        try:
            self.ready_s = wait_answering(self.url, body, 90, self.server.proc)
        except Exception:
            self.stop()
            raise

    def settle(self, timeout=60):
        return 0.0

    def history(self):
        return {"runs_total": 0, "store_mb": round(dir_size_mb(self.dir), 1)}

    def stop(self):
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class N8n:
    name = "n8n"
    keeps = ("every execution (status, timing, and the full data of every node: the webhook's "
             "headers and body, each node's output) in SQLite (default settings: sqlite legacy "
             "driver, EXECUTIONS_DATA_SAVE_ON_SUCCESS=all, pruned after 336 h or beyond 10,000 "
             "executions), plus an event log file (n8nEventLog.log)")

    extra_env = {}

    def __init__(self, args, body):
        self.dir = tempfile.mkdtemp(prefix="hookflow-peers-n8n-")
        port = free_port()
        self.env = dict(os.environ, **self.extra_env,
                        N8N_USER_FOLDER=self.dir,
                        N8N_PORT=str(port),
                        N8N_LISTEN_ADDRESS="127.0.0.1",
                        N8N_DIAGNOSTICS_ENABLED="false",
                        N8N_VERSION_NOTIFICATIONS_ENABLED="false",
                        N8N_TEMPLATES_ENABLED="false",
                        N8N_PERSONALIZATION_ENABLED="false",
                        N8N_HIRING_BANNER_ENABLED="false",
                        N8N_RUNNERS_ENABLED="false",
                        N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS="false",
                        N8N_LOG_LEVEL="warn",
                        N8N_GRACEFUL_SHUTDOWN_TIMEOUT="15",
                        NODE_ENV="production")
        n8n = os.path.join(NODE_MODULES, "n8n", "bin", "n8n")
        log_path = os.path.join(self.dir, "server.log")
        with open(log_path, "ab") as log:
            run_cmd([args.node, n8n, "import:workflow",
                     "--input=" + os.path.join(PEERS, "n8n-workflow.json")], self.env, 300, log)
            run_cmd([args.node, n8n, "update:workflow", "--id=hfBenchPeers0001", "--active=true"],
                    self.env, 120, log)
        self.server = NodeServer([args.node, n8n, "start"], self.env, log_path, self.dir)
        self.pid = self.server.pid
        self.url = f"http://127.0.0.1:{port}/webhook/bench"
        try:
            self.ready_s = wait_answering(self.url, body, 180, self.server.proc)
        except Exception:
            self.stop()
            raise

    def db(self):
        return os.path.join(self.dir, ".n8n", "database.sqlite")

    def settle(self, timeout=60):
        """Waits (bounded) until no execution is new/running: n8n saves an execution's final
        state just after Respond to Webhook has answered. Returns seconds waited."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            live = sum(n for s, n in self.history().get("runs_by_status", {}).items()
                       if s in ("new", "running", "waiting"))
            if live == 0:
                break
            time.sleep(0.2)
        return time.monotonic() - start

    def history(self):
        # counted after stop() (n8n finishes and saves running executions on SIGTERM); until
        # then a read-only look, which may miss the last few saves
        out = {"store_mb": round(dir_size_mb(os.path.join(self.dir, ".n8n")), 1)}
        out.update(store_counts(self.db(),
                                "select status, count(*) from execution_entity group by status",
                                {"execution_data_rows": "select count(*) from execution_data"}))
        return out

    def stop(self):
        self.server.stop()
        # history() is read once more by the caller after stop, then the dir goes in cleanup()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class N8nNoSave(N8n):
    """Reference: n8n without history (EXECUTIONS_DATA_SAVE_ON_SUCCESS=none): how much of n8n's
    cost is saving executions."""
    name = "n8n-nosave"
    extra_env = {"EXECUTIONS_DATA_SAVE_ON_SUCCESS": "none"}
    keeps = "successful executions are not saved (EXECUTIONS_DATA_SAVE_ON_SUCCESS=none); failed ones are"


CLASSES = {"hookflow": Hookflow, "node-red": NodeRed, "n8n": N8n,
           "hookflow-normal": HookflowSyncNormal, "n8n-nosave": N8nNoSave}


# ---------------------------------------------------------------------------------------------
# load generator


def oha(args, url, body_path, *, secs, conns, qps=None):
    cmd = [args.oha, "--no-tui", "--output-format", "json", "-c", str(conns), "-z", f"{secs}s",
           "-t", "30s", "-w", "-m", "POST", "-H", "content-type: application/json", "-D", body_path]
    if qps:
        cmd += ["-q", str(qps)]
    cmd.append(url)
    ch0 = bench.children_cpu()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=secs + 90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("oha did not finish in time")
    if proc.returncode != 0:
        raise RuntimeError(f"oha failed ({proc.returncode}): {err.decode()[:2000]}")
    try:
        report = json.loads(out)
    except json.JSONDecodeError:
        raise RuntimeError(f"oha printed no JSON: {out[:300]!r} {err.decode()[:1000]!r}")
    summary = report["summary"]
    codes = {str(k): v for k, v in report.get("statusCodeDistribution", {}).items()}
    pct = report.get("latencyPercentiles", {})
    ms = lambda k: (pct.get(k) or 0) * 1e3  # noqa: E731
    ok = codes.get("200", 0)
    return {
        "duration_s": summary.get("total"),
        "requests": sum(codes.values()),
        "ok_200": ok,
        "requests_per_s": ok / summary["total"] if summary.get("total") else None,
        "non_200": {k: v for k, v in codes.items() if k != "200"},
        "errors": report.get("errorDistribution", {}),
        "p50_ms": ms("p50"), "p90_ms": ms("p90"), "p99_ms": ms("p99"), "p999_ms": ms("p99.9"),
        "max_ms": (summary.get("slowest") or 0) * 1e3,
        "oha_cpu_s": round(bench.children_cpu() - ch0, 2),
    }


def error_count(load):
    return sum(load["non_200"].values()) + sum(load["errors"].values())


# ---------------------------------------------------------------------------------------------
# one measurement: fresh system, check, warm up, measure, history, stop


def measure(args, system, workload, body, body_path, rate=None):
    t0 = time.monotonic()
    sysobj = CLASSES[system](args, body)
    start_s = time.monotonic() - t0
    res = {"system": system, "workload": workload, "start_s": round(start_s, 1)}
    try:
        status, text = post(sysobj.url, body, timeout=30)
        res["check"] = {"status": status, "body": text[:200]}
        try:
            answer = json.loads(text or "null")
        except json.JSONDecodeError:
            answer = None
        if status != 200 or answer != {"ok": True}:
            raise RuntimeError(f"{system}: check request answered {status} {text[:200]!r}")
        url = sysobj.async_url if workload == "w3" else sysobj.url
        oha(args, url, body_path, secs=args.warmup_secs, conns=min(16, args.conns))
        sysobj.settle()
        time.sleep(1)
        res["loadavg_before"] = loadavg()
        res["fsync_ms_before"] = fsync_ms(tempfile.gettempdir())
        hist0 = sysobj.history()
        cpu0, busy0 = tree_cpu(sysobj.pid), machine_busy_s()
        conns = args.conns_low if workload == "w1low" else args.conns
        load = oha(args, url, body_path, secs=args.secs, conns=conns,
                   qps=rate if workload in ("w2", "w2b") else None)
        res["conns"] = conns
        cpu = tree_cpu(sysobj.pid) - cpu0
        busy = machine_busy_s() - busy0
        # CPU that neither the server nor oha used during the load: other work on the machine
        res["other_cpu_s"] = round(max(0.0, busy - cpu - load["oha_cpu_s"]), 1)
        res["other_cores"] = round(res["other_cpu_s"] / load["duration_s"], 2)
        res.update(load)
        res["errors_total"] = error_count(load)
        res["server_cpu_s"] = round(cpu, 2)
        res["server_cores_used"] = round(cpu / load["duration_s"], 2)
        res["server_cpu_ms_per_req"] = round(cpu / max(load["requests"], 1) * 1e3, 3)
        res["loadavg_after"] = loadavg()
        if workload in ("w2", "w2b"):
            res["target_rate"] = rate
        if workload == "w3":  # async: 202s, then the background runs drain
            res["ok_202"] = load["non_200"].get("202", 0)
            res["requests_per_s"] = res["ok_202"] / load["duration_s"]
            res["errors_total"] = error_count(load) - res["ok_202"]
            backlog = sysobj.srv.live_runs()
            drained, drain_s = sysobj.srv.wait_drained(300)
            res.update({"backlog_at_end": backlog, "drained": drained, "drain_s": round(drain_s, 2)})
            res["server_cpu_s_incl_drain"] = round(tree_cpu(sysobj.pid) - cpu0, 2)
        if workload != "w3":  # work finishing after the answers (n8n's execution saves)
            res["settle_s"] = round(sysobj.settle(), 2)
            res["server_cpu_s_incl_settle"] = round(tree_cpu(sysobj.pid) - cpu0, 2)
        res["peak_rss_mb"] = round(tree_peak_rss_mb(sysobj.pid), 1)
        res["server_cpu_total_s"] = round(tree_cpu(sysobj.pid), 2)
        if system.startswith("n8n"):
            sysobj.stop()  # lets n8n finish saving executions, then count them
        hist1 = sysobj.history()
        res["history"] = {"before_load": hist0, "after_load": hist1,
                          "kept_during_load": hist1.get("runs_total", 0) - hist0.get("runs_total", 0),
                          "what": sysobj.keeps}
        return res
    finally:
        sysobj.stop()
        if system.startswith("n8n"):
            sysobj.cleanup()


# ---------------------------------------------------------------------------------------------
# report


def f(v, d=1):
    if v is None:
        return "n/a"
    return f"{v:,.{d}f}" if isinstance(v, float) else f"{v:,}"


def markdown(results):
    rows = results["runs"]
    by = {(r["system"], r["workload"]): r for r in rows if "error" not in r}
    m = results["machine"]
    rate_b = results.get("rate_b")
    out = [
        f"# hookflow side by side with n8n and Node-RED — {results['date']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram']}; load average (1/5/15 min) at start "
        f"{' / '.join(str(x) for x in results['loadavg_start'])}, at end "
        f"{' / '.join(str(x) for x in results.get('loadavg_end', []))} (the machine is shared); "
        f"write+fsync latency in the temp dir p50/p90 at start {results['fsync_ms_start']['p50']}/"
        f"{results['fsync_ms_start']['p90']} ms, at end {results.get('fsync_ms_end', {}).get('p50')}/"
        f"{results.get('fsync_ms_end', {}).get('p90')} ms. "
        f"Versions: hookflow {m['hookflow']}, n8n {m['n8n']}, Node-RED {m['node_red']}, "
        f"Node.js {m['node']}, {m['oha']}. Body: {results['body_bytes']}-byte Activepieces "
        f"`flow.run.finished` event (bench/bench.py). oha runs on the same 2 cores.",
        "",
        f"W1 = `oha -c {results['conns']} -z {results['secs']}s` (closed loop), and at "
        f"`-c {results.get('conns_low', '')}`; "
        f"W2 = `oha -c {results['conns']} -q {results['rate']} -z {results['secs']}s`"
        + (f" ({results['rate_note']})" if results.get("rate_note") else "")
        + (f"; W2b = the same at `-q {rate_b}` for the systems whose W1 is at least twice that"
           if rate_b else "")
        + "; W3 = hookflow async intake (202, run in background), reference only. "
          f"Fresh server per row, {results['warmup_secs']} s warm-up at 16 connections. "
          "CPU = utime+stime of the server's process tree during the load (ms per request); "
          "kept = runs/executions stored during the load.",
        "",
        "| workload | system | req/s (200s) | p50 ms | p99 ms | p99.9 ms | errors | server CPU s (ms/req) | oha CPU s | peak RSS MiB | kept | load avg before / other processes' cores during |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        name = {"w1": f"W1 at {r.get('conns', '')} conns", "w2": f"W2 {r.get('target_rate', '')}/s",
                "w2b": f"W2b {r.get('target_rate', '')}/s",
                "w1low": f"W1 at {r.get('conns', '')} conns",
                "w3": "W3 async intake (202s/s)"}[r["workload"]]
        if "error" in r:
            out.append(f"| {name} | {LABEL[r['system']]} | failed: {r['error'][:160]} | | | | | | | | | |")
            continue
        kept = r["history"]["kept_during_load"]
        errs = f"{r['errors_total']}"
        if r["workload"] != "w3" and (r["non_200"] or r["errors"]):
            errs += f" {dict(r['non_200'], **r['errors'])}"
        cpu = f"{f(r['server_cpu_s'], 1)} ({f(r['server_cpu_ms_per_req'], 3)})"
        if r["workload"] == "w3":
            cpu += f"; {f(r['server_cpu_s_incl_drain'], 1)} incl. drain of {f(r['backlog_at_end'])} runs in {f(r['drain_s'], 1)} s"
        elif r.get("server_cpu_s_incl_settle", 0) - r["server_cpu_s"] >= 0.1:
            cpu += f"; {f(r['server_cpu_s_incl_settle'], 1)} incl. saves after the last answer"
        out.append(
            f"| {name} | {LABEL[r['system']]} | {f(r['requests_per_s'], 0)} | {f(r['p50_ms'], 2)} | "
            f"{f(r['p99_ms'], 2)} | {f(r['p999_ms'], 2)} | {errs} | {cpu} | {f(r['oha_cpu_s'], 1)} | "
            f"{f(r['peak_rss_mb'], 0)} | {f(kept)} | {r['loadavg_before'][0]} / "
            f"{r.get('other_cores')} |")
    for system in SYSTEMS:
        cands = [by[(system, w)] for w in ("w1", "w1low") if (system, w) in by]
        if cands:
            by[(system, "best")] = max(cands, key=lambda r: r["requests_per_s"] or 0)
    out += ["", "## Ratios hookflow / peer", "",
            "| workload | peer | throughput ratio | p99 hookflow vs peer | CPU per request peer/hookflow | target | met? |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    targets = {"n8n": 20, "node-red": 5}
    for wl in ("w1", "w1low", "best", "w2", "w2b"):
        h = by.get(("hookflow", wl))
        for peer in ("n8n", "node-red"):
            p = by.get((peer, wl))
            if not h or not p:
                continue
            ratio = h["requests_per_s"] / p["requests_per_s"] if p["requests_per_s"] else None
            p99_ok = h["p99_ms"] <= p["p99_ms"]
            cpu_ratio = (p["server_cpu_ms_per_req"] / h["server_cpu_ms_per_req"]
                         if h["server_cpu_ms_per_req"] else None)
            if wl in ("w1", "w1low", "best"):
                target = f"≥ {targets[peer]}× at equal or better p99"
                met = ratio is not None and ratio >= targets[peer] and p99_ok
            else:
                target, met = "same rate; p99 equal or better", p99_ok
            wname = {"w1": f"W1 ({h['conns']} conns)", "w1low": f"W1 ({h['conns']} conns)",
                     "best": f"W1 best of each ({h['conns']} vs {p['conns']} conns)",
                     "w2": "W2", "w2b": "W2b"}[wl]
            out.append(f"| {wname} | {LABEL[peer]} | {f(ratio, 2)}× | {f(h['p99_ms'], 2)} vs "
                       f"{f(p['p99_ms'], 2)} ms | {f(cpu_ratio, 1)}× | {target} | "
                       f"{'**met**' if met else '**MISSED**'} |")
    out += ["", "## What each system keeps", ""]
    for system in SYSTEMS + VARIANTS:
        r = by.get((system, "w1"))
        if r:
            h, after = r["history"], r["history"]["after_load"]
            extra = ""
            if "events" in after:
                extra = f", {f(after['events'])} events, {f(after['step_results'])} step results"
            elif "execution_data_rows" in after:
                extra = f", {f(after['execution_data_rows'])} execution data rows"
            out.append(f"- **{LABEL[system]}**: {h['what']}. At the end of W1 (incl. check and "
                       f"warm-up): {f(after.get('runs_total', 0))} runs stored "
                       f"{after.get('runs_by_status') or ''}{extra}; {f(after.get('store_mb'), 1)} MB on disk.")
    out.append("")
    return "\n".join(out)


def machine(args):
    def version(pkg):
        try:
            with open(os.path.join(NODE_MODULES, pkg, "package.json")) as fh:
                return json.load(fh)["version"]
        except OSError:
            return "missing"

    def cmd_out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:
            return "unknown"

    with open("/proc/cpuinfo") as fh:
        cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?")
    with open("/proc/meminfo") as fh:
        ram = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal"))
    git = cmd_out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram": f"{ram / 1048576:.1f} GiB",
            "hookflow": f"{git} (+ working tree) {cmd_out([args.bin, '--version'])}".strip(),
            "n8n": version("n8n"), "node_red": version("node-red"),
            "node": cmd_out([args.node, "--version"]), "oha": cmd_out([args.oha, "--version"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "hookflow"))
    ap.add_argument("--oha", default=shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha"))
    ap.add_argument("--node", default=shutil.which("node") or "node")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--only", default=",".join(SYSTEMS + VARIANTS),
                    help="systems: " + ", ".join(SYSTEMS + VARIANTS) + " (variants: W1 only)")
    ap.add_argument("--workloads", default="w1,w1low,w2,w3")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--conns-low", type=int, default=8, help="connections of W1low")
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--warmup-secs", type=int, default=5)
    ap.add_argument("--rate", type=int, default=200)
    args = ap.parse_args()
    chosen = args.only.split(",")
    unknown = [s for s in chosen if s not in CLASSES]
    if unknown:
        sys.exit(f"unknown systems {unknown}; known: {', '.join(CLASSES)}")
    systems = [s for s in SYSTEMS if s in chosen]
    variants = [s for s in VARIANTS if s in chosen]
    workloads = args.workloads.split(",")
    for s in systems + variants:
        pkg = "n8n" if s.startswith("n8n") else "node-red" if s == "node-red" else None
        if pkg and not os.path.isdir(os.path.join(NODE_MODULES, pkg)):
            sys.exit(f"{s} is not installed: run bash bench/peers/install.sh")
    os.makedirs(args.out, exist_ok=True)
    if any(s.startswith("hookflow") for s in systems + variants):
        # a copy, so a concurrent rebuild cannot swap the binary mid-run
        copy = os.path.join(args.out, "hookflow-peers")
        shutil.copy2(args.bin, copy)
        args.bin = copy
    body_path = os.path.join(args.out, "event.json")
    bench.write_body(body_path)
    with open(body_path) as fh:
        body = fh.read()
    results = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(args), "loadavg_start": loadavg(), "body_bytes": len(body.encode()),
               "conns": args.conns, "conns_low": args.conns_low, "secs": args.secs, "warmup_secs": args.warmup_secs,
               "rate": args.rate, "fsync_ms_start": fsync_ms(tempfile.gettempdir()), "runs": []}
    print(json.dumps(results["machine"]), "load", results["loadavg_start"], flush=True)

    def one(system, wl, rate=None):
        print(f"== {wl} {system} ...", flush=True)
        try:
            r = measure(args, system, wl, body, body_path, rate)
        except Exception as e:  # a peer failing is reported, the others still run
            r = {"system": system, "workload": wl, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(r), flush=True)
        results["runs"].append(r)
        return r

    w1 = {}
    if "w1" in workloads:
        for s in systems + variants:
            r = one(s, "w1")
            if "error" not in r and s in systems:
                w1[s] = r["requests_per_s"]
    if "w1low" in workloads:
        for s in systems:
            r = one(s, "w1low")
            if "error" not in r:
                w1[s] = max(w1.get(s, 0), r["requests_per_s"])
    if "w2" in workloads:
        # W2: one rate every system sustains (at most half the slowest system's best W1)
        slowest = min(w1.values()) if w1 else None
        if slowest and args.rate > slowest * 0.5:
            results["rate"] = max(1, int(slowest * 0.5))
            results["rate_note"] = (f"{args.rate}/s asked; lowered to half the slowest "
                                    f"system's best W1 throughput: {results['rate']}/s")
        for s in systems:
            one(s, "w2", results["rate"])
        # W2b: the asked rate, for the systems that sustain it (W1 >= 2x the rate)
        if results["rate"] < args.rate:
            results["rate_b"] = args.rate
            for s in systems:
                if w1.get(s, 0) >= 2 * args.rate:
                    one(s, "w2b", args.rate)
    if "w3" in workloads and "hookflow" in systems:
        one("hookflow", "w3")
    results["loadavg_end"] = loadavg()
    results["fsync_ms_end"] = fsync_ms(tempfile.gettempdir())
    with open(os.path.join(args.out, "peers.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    md = markdown(results)
    with open(os.path.join(args.out, "peers.md"), "w") as fh:
        fh.write(md)
    print(md)


if __name__ == "__main__":
    sys.exit(main())
