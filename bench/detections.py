#!/usr/bin/env python3
"""Detections benchmark (issue 15).

1. Replay: 100,000 Activepieces sign-in events (7 days, 5,000 users, 20 % failures, a few
   brute-force bursts, some out of order) through the `brute-force-sign-ins` template with
   `hookflow flow replay --json`, three times; events/s from the wall clock of the command
   (start-up, reading the file, and the plugin cache load included). The same events through
   the template with its threshold step removed (the router alone) give the baseline, so the
   threshold step's cost per event in a replay is the difference.
2. Under load: a fresh server per flow, 20,000 failed sign-ins fired with oha (-c 64, no id:
   every event new), all for ONE user and IP - the hottest key, every event takes that key's
   row lock - through (A) router + log step and (B) router + threshold + log step in
   `crossed`. Completed runs/s and server CPU per run, B next to A.

Usage: python3 bench/detections.py --bin target/release/hookflow [--oha oha] [--n 20000]
"""
import argparse
import copy
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402  (the Server class, oha runner, /proc readers)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "templates", "handlers", "brute-force-sign-ins.yaml")


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def make_events(path, n, seed=7):
    sample = json.load(open(os.path.join(ROOT, "templates", "events", "activepieces.json")))
    base = next(e["sample"] for e in sample["events"] if e["name"] == "user.signed.in")
    rng = random.Random(seed)
    start = datetime(2026, 3, 2, tzinfo=timezone.utc)
    span = 7 * 86400
    events = []
    attacks, per_attack = 200, 8
    for i in range(n - attacks * per_attack):
        e = copy.deepcopy(base)
        user = rng.randrange(5000)
        t = start + timedelta(seconds=span * i / n + rng.uniform(-120, 120))
        e.update({"id": f"ev{i}", "created": iso(t), "updated": iso(t),
                  "userEmail": f"user{user}@example.com", "ip": f"10.{user % 250}.{user // 250}.7",
                  "data": {"success": rng.random() > 0.2}})
        events.append(e)
    # Brute-force bursts: 200 attacks of 8 failures within 20 minutes.
    for a in range(attacks):
        t0 = start + timedelta(seconds=rng.uniform(0, span))
        for k in range(per_attack):
            e = copy.deepcopy(base)
            t = t0 + timedelta(seconds=150 * k)
            e.update({"id": f"atk{a}-{k}", "created": iso(t), "updated": iso(t),
                      "userEmail": f"victim{a}@example.com", "ip": "203.0.113.9",
                      "data": {"success": False}})
            events.append(e)
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    return len(events)


def router_only(template_path, out_path):
    """The template with its threshold step taken out: the branch runs nothing."""
    text = open(template_path).read()
    head, _, _ = text.partition("          - name: count-failures")
    rest = "      - name: Otherwise\n        fallback: true\n        steps: []\n"
    open(out_path, "w").write(head.rstrip() + " []\n" + rest)


def replay(binary, flow, events, runs=3):
    times, report = [], None
    for _ in range(runs):
        t0 = time.monotonic()
        out = subprocess.run([binary, "flow", "replay", flow, "--events", events, "--json", "-q"],
                             capture_output=True, check=True)
        times.append(time.monotonic() - t0)
        report = json.loads(out.stdout)
    return statistics.median(times), times, report


def python_load(url, body_path, n, conns=32):
    """A keep-alive load generator for machines without oha: `conns` threads share `n` POSTs.
    Slower than oha, but A and B below get the same load, and the figures are their ratio."""
    import http.client
    import threading
    from urllib.parse import urlsplit
    body = open(body_path, "rb").read()
    parts = urlsplit(url)
    latencies, codes, lock = [], {}, threading.Lock()
    counter = iter(range(n))

    def worker():
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine = []
        while True:
            with lock:
                if next(counter, None) is None:
                    break
            t0 = time.monotonic()
            conn.request("POST", parts.path, body, {"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            mine.append(time.monotonic() - t0)
            with lock:
                codes[str(resp.status)] = codes.get(str(resp.status), 0) + 1
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.monotonic() - started
    latencies.sort()
    return {"total_s": total, "status_codes": codes,
            "p50_ms": bench.percentile(latencies, 0.5) * 1e3,
            "p99_ms": bench.percentile(latencies, 0.99) * 1e3}


def live(args, flow, body_path, label):
    srv = bench.Server(args.bin, label)
    try:
        flow_id = srv.create_flow(flow)
        cpu0 = srv.cpu()
        t0 = time.monotonic()
        url = srv.urls(f"/v1/webhooks/{flow_id}")[0]
        if shutil.which(args.oha):
            load = bench.run_load(args.oha, [url], body_path, n=args.n, conns=64)
        else:
            load = python_load(url, body_path, args.n)
        drained, _ = srv.wait_drained(300)
        cpu = srv.cpu() - cpu0
        runs = srv.runs(flow_id)
        done = [r for r in runs if r.get("finished")]
        first = min(bench.ts(r["created"]) for r in runs)
        last = max(bench.ts(r["finished"]) for r in done)
        statuses = {}
        for r in runs:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        return {"drained": drained, "runs": len(runs), "statuses": statuses,
                "completed_runs_per_s": len(done) / (last - first),
                "server_cpu_us_per_run": cpu / max(len(done), 1) * 1e6,
                "intake_p50_ms": load["p50_ms"], "intake_p99_ms": load["p99_ms"],
                "wall_s": time.monotonic() - t0, "peak_rss_mb": srv.peak_rss_mb(),
                "load_generator": "oha" if shutil.which(args.oha) else "python (32 threads)"}
    finally:
        srv.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="target/release/hookflow")
    p.add_argument("--oha", default="oha")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--skip-live", action="store_true")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="hookflow-detections-")
    events = os.path.join(tmp, "events.jsonl")
    count = make_events(events, args.events)
    baseline_flow = os.path.join(tmp, "router-only.yaml")
    router_only(TEMPLATE, baseline_flow)
    results = {"events": count}
    # Warm the CLI's compiled-plugin cache once, outside the timings.
    subprocess.run([args.bin, "flow", "validate", TEMPLATE], capture_output=True, check=True)
    med, all_t, report = replay(args.bin, TEMPLATE, events)
    base_med, base_t, base_report = replay(args.bin, baseline_flow, events)
    results["replay"] = {
        "threshold_s": all_t, "router_only_s": base_t,
        "events_per_s": count / med, "router_only_events_per_s": count / base_med,
        "alerts": len(report["alerts"]), "actions_total": report["actionsTotal"],
        "threshold_us_per_event": (med - base_med) / count * 1e6,
    }
    print(json.dumps(results["replay"], indent=1))
    if not args.skip_live:
        body = {"action": "user.signed.in", "userEmail": "victim@example.com", "ip": "203.0.113.9",
                "created": iso(datetime.now(timezone.utc)), "data": {"success": False}}
        body_path = os.path.join(tmp, "body.json")
        json.dump(body, open(body_path, "w"))
        router = {"name": "failed sign-ins", "trigger": {"type": "webhook"}, "steps": [
            {"name": "route", "type": "router", "branches": [{"name": "failed", "when": [[
                {"left": "{{trigger.body.action}}", "operator": "TEXT_EXACTLY_MATCHES", "right": "user.signed.in"}]],
                "steps": []}]}]}
        log = {"name": "note", "type": "action", "plugin": "log@0.1.0", "input": {"message": "{{trigger.body.userEmail}}"}}
        a = copy.deepcopy(router)
        a["steps"][0]["branches"][0]["steps"] = [log]
        b = copy.deepcopy(router)
        b["steps"][0]["branches"][0]["steps"] = [{
            "name": "count", "type": "threshold", "groupBy": "{{trigger.body.userEmail}}|{{trigger.body.ip}}",
            "window": "1h", "threshold": 5, "crossed": [log]}]
        results["live_router_log"] = live(args, a, body_path, "det-a")
        results["live_threshold"] = live(args, b, body_path, "det-b")
        print(json.dumps({k: results[k] for k in ("live_router_log", "live_threshold")}, indent=1))
    out = os.path.join(ROOT, "bench", "out")
    os.makedirs(out, exist_ok=True)
    json.dump(results, open(os.path.join(out, "detections.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
