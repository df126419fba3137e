#!/usr/bin/env python3
"""Intake latency while run retention deletes a large backlog (Python 3.11 stdlib only).

  1. A server creates the schema and one flow with no steps (intake only), then stops.
  2. N finished runs (default 1,000,000), each with its event and one step result, finished 30
     days ago, are written straight into the stopped server's SQLite file, which is then copied
     aside: every window below starts from that same file.
  3. A: the server again without run retention; webhook intake at a fixed rate for D seconds
     (after 2 s of the same load, discarded, in every window alike).
  4. B: the server again with HOOKFLOW_RUN_RETENTION_DAYS=1, so a pass starts at once and
     deletes the backlog; the same intake load for D seconds while the pass runs
     (hookflow_runs_deleted_total is sampled before and after), then the pass is let finish.
  5. C (with --archive): as B, with HOOKFLOW_RUN_ARCHIVE_DIR set, so every deleted run is first
     written to gzip JSON Lines.
  Reported: intake p50/p99/max per window and B's and C's p99 as ratios of A's (same machine,
  same run, same database), how many runs each pass deleted inside its window and how long the
  whole pass took.

Usage: retention.py --bin target/release/hookflow [--runs 1000000] [--rate 200] [--seconds 20]
                    [--archive]
"""

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import bench  # noqa: E402  (the Server class, percentile)

EMPTY_FLOW = {"name": "bench-retention", "trigger": {"type": "webhook"}, "steps": []}


def uuid7_text(ms, n):
    """A UUIDv7-shaped id for time `ms` (unique per `n`): runs' ids are time-ordered."""
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (n & 0xFFF) << 64 | 0b10 << 62 | n
    return str(uuid.UUID(int=value))


def seed(db_path, flow_id, n):
    con = sqlite3.connect(db_path)
    platform, project, version = con.execute(
        "SELECT platform_id, project_id, (SELECT MAX(version) FROM flow_versions WHERE flow_id = ?) "
        "FROM flows WHERE id = ?", (flow_id, flow_id)).fetchone()
    old_ms = int((time.time() - 30 * 86400) * 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(old_ms / 1000))
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA journal_mode = WAL")
    started = time.monotonic()
    chunk = 50_000
    for base in range(0, n, chunk):
        runs, events, steps = [], [], []
        for i in range(base, min(n, base + chunk)):
            run_id = uuid7_text(old_ms + i // 1000, i)
            event_id = uuid7_text(old_ms + i // 1000, i + (1 << 40))
            runs.append((run_id, platform, project, flow_id, version or 1, event_id, "PRODUCTION",
                         "SUCCEEDED", 1, stamp, stamp, stamp, 1.0))
            events.append((event_id, flow_id, f"seed-{i}", run_id, "{}", '{"n":1}', stamp))
            steps.append((run_id, "a", 0, "action", "SUCCEEDED", "{}", "{}", 1, 1.0))
        con.executemany(
            "INSERT INTO runs (id, platform_id, project_id, flow_id, flow_version, event_id, "
            "environment, status, attempt, created, started, finished, duration_ms) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
        con.executemany(
            "INSERT INTO events (id, flow_id, event_key, run_id, headers, body, received) "
            "VALUES (?,?,?,?,?,?,?)", events)
        con.executemany(
            "INSERT INTO step_results (run_id, name, seq, kind, status, input, output, attempts, "
            "duration_ms) VALUES (?,?,?,?,?,?,?,?,?)", steps)
        con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return time.monotonic() - started


def paced_load(url, rate, seconds, conns=16):
    """Open-loop intake at `rate` requests/s for `seconds` on `conns` keep-alive connections;
    latency is measured from each request's scheduled time, so a stall shows up in full."""
    import http.client
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    lat, codes, lock = [], {}, threading.Lock()
    start = time.monotonic() + 0.2
    total = int(rate * seconds)

    def worker(k):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        mine = []
        for i in range(k, total, conns):
            due = start + i / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            body = json.dumps({"id": f"live-{uuid.uuid4()}", "n": i}).encode()
            conn.request("POST", parts.path, body, {"content-type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            mine.append(time.monotonic() - due)
            with lock:
                codes[str(resp.status)] = codes.get(str(resp.status), 0) + 1
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat.sort()
    return {"requests": len(lat), "status_codes": codes,
            "p50_ms": round(bench.percentile(lat, 0.5) * 1e3, 2),
            "p99_ms": round(bench.percentile(lat, 0.99) * 1e3, 2),
            "max_ms": round(lat[-1] * 1e3, 2) if lat else None}


def deleted(server):
    return int(server.metrics().get("hookflow_runs_deleted_total", 0))


def restore(db_path, pristine):
    """The seeded database again, as it was before any window (the server is stopped)."""
    for suffix in ("-wal", "-shm"):
        if os.path.exists(db_path + suffix):
            os.remove(db_path + suffix)
    shutil.copyfile(pristine, db_path)


def window(args, env, url_path, runs):
    """Warm-up, then D seconds of intake; with retention in `env`, the pass's progress in the
    window and the time it took to finish after it."""
    s = bench.Server(args.bin, "retention", extra_env=env)
    try:
        paced_load(s.base + url_path, args.rate, 2)
        before = deleted(s)
        result = paced_load(s.base + url_path, args.rate, args.seconds)
        if "HOOKFLOW_RUN_RETENTION_DAYS" in env:
            result["deleted_in_window"] = deleted(s) - before
            # Let the pass finish (bounded) to report its length.
            t0 = time.monotonic()
            while deleted(s) < runs and time.monotonic() - t0 < 1800:
                time.sleep(0.5)
            result["pass_seconds_after_window"] = round(time.monotonic() - t0, 1)
            result["deleted_total"] = deleted(s)
    finally:
        s.stop()
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/hookflow")
    ap.add_argument("--runs", type=int, default=1_000_000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--archive", action="store_true",
                    help="also window C: retention with HOOKFLOW_RUN_ARCHIVE_DIR")
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="hookflow-bench-retention-")
    env = {"HOOKFLOW_DATA_DIR": data, "HOOKFLOW_WORKERS": "8"}
    db_path = os.path.join(data, "hookflow.db")

    s = bench.Server(args.bin, "retention-setup", extra_env=env)
    flow_id = s.create_flow(EMPTY_FLOW)
    s.stop()
    seed_s = seed(db_path, flow_id, args.runs)
    pristine = os.path.join(data, "seeded.db")
    shutil.copyfile(db_path, pristine)
    print(f"seeded {args.runs} finished runs in {seed_s:.1f} s", flush=True)
    path = f"/v1/webhooks/{flow_id}"

    base = window(args, env, path, args.runs)
    print("A (no retention):", base, flush=True)
    restore(db_path, pristine)
    retention = dict(env, HOOKFLOW_RUN_RETENTION_DAYS="1")
    during = window(args, retention, path, args.runs)
    print("B (retention pass running):", during, flush=True)
    result = {
        "runs_seeded": args.runs, "rate_rps": args.rate, "seconds": args.seconds,
        "binary": args.bin, "a_no_retention": base, "b_during_retention": during,
        "p99_ratio_b_over_a": round(during["p99_ms"] / base["p99_ms"], 2) if base["p99_ms"] else None,
    }
    if args.archive:
        restore(db_path, pristine)
        archive = os.path.join(data, "run-archive")
        archived = window(args, dict(retention, HOOKFLOW_RUN_ARCHIVE_DIR=archive), path, args.runs)
        archived["archive_bytes"] = sum(
            os.path.getsize(os.path.join(archive, f)) for f in os.listdir(archive))
        print("C (retention pass with archive):", archived, flush=True)
        result["c_during_retention_with_archive"] = archived
        result["p99_ratio_c_over_a"] = (
            round(archived["p99_ms"] / base["p99_ms"], 2) if base["p99_ms"] else None)
    print(json.dumps(result, indent=2))
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
