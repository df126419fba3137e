#!/usr/bin/env python3
"""Attack benchmark (issue 18, hardening I): normal webhook intake at a fixed rate while, in
turn, something hostile works on the server. Python 3.11 stdlib only (asyncio, raw HTTP/1.1).

Scenarios, each against a fresh `hookflow serve` (temporary data dir, default settings except
where said):
  quiet       intake alone: the baseline
  sync-flood  SYNC_CLIENTS clients call /sync (16 KiB bodies, timeoutMs=5000) on a flow whose
              step sleeps 1 s, again as soon as each call returns
  slowloris   SLOW_CLIENTS connections (arriving over the first 10 s) send a request head one
              byte per second, reconnecting when cut (more than the default 1,024-connection
              cap); a probe opens a fresh connection for /healthz every 0.5 s
  host-memory 16 runs/s of plugins hoarding host memory: the hostile test plugin's `fields`
              mode (wasi:http header maps until capped) and a JavaScript step calling fetch 2,000
              times without allowedHosts
  huge-body   4 event destinations (flow.run.finished, retries every 0.2 s) to a receiver that
              answers 500 with a 1.5 GB body, streamed as fast as it is read

Intake: INTAKE_CONNS keep-alive connections, opened before the attack, POST a ~600-byte event
(no id) to a flow without steps at RATE requests/s for SECS s, after 2 s of attack warm-up.
Latency is measured from each request's scheduled time (so a stalled server is not hidden by a
stalled client). Every run id acknowledged (202) is looked up afterwards: "lost" counts those
the server does not know. Resident memory: the server's VmRSS sampled every 100 ms during the
scenario, max.

Usage: attack.py --bin target/release/hookflow [--rate 200] [--secs 15] [--only quiet,slowloris]
       [--out bench/out/attack.json]
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import event_body, percentile  # noqa: E402

ADMIN_TOKEN = "bench-admin-token-0123456789"
HOSTILE = os.path.join(ROOT, "plugins", "target", "wasm32-wasip2", "release", "hostile_plugin.wasm")
SYNC_CLIENTS = 400
SLOW_CLIENTS = 1500
INTAKE_CONNS = 16


# ---------------------------------------------------------------------------------------------
# a minimal HTTP/1.1 client


class Conn:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self):
        if self.writer:
            self.writer.close()
            self.writer = None

    async def request(self, method, path, body=b"", headers=None):
        """Sends one request on the kept-alive connection (opening it if needed); returns
        (status, body bytes)."""
        if self.writer is None:
            await self.open()
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            self.close()
            raise ConnectionError("closed by the server")
        status = int(status_line.split()[1])
        length, chunked, close = 0, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.lower() == "close":
                close = True
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                data += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            data = await self.reader.readexactly(length)
        if close:
            self.close()
        return status, data


def admin_headers():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}


async def api(server, method, path, payload=None):
    conn = Conn(*server.address)
    try:
        body = json.dumps(payload).encode() if payload is not None else b""
        status, data = await conn.request(method, path, body, admin_headers())
        return status, (json.loads(data) if data else None)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# the server


class Server:
    def __init__(self, binary, cache_dir, plugin_dir, env):
        self.dir = tempfile.mkdtemp(prefix="hookflow-attack-")
        environment = dict(os.environ)
        environment.update({
            "HOOKFLOW_LISTEN": "127.0.0.1:0",
            "HOOKFLOW_DATA_DIR": self.dir,
            "HOOKFLOW_CACHE_DIR": cache_dir,
            "HOOKFLOW_PLUGIN_DIR": plugin_dir,
            "HOOKFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
            "HOOKFLOW_LOG": "error",
        })
        environment.update(env)
        self.proc = subprocess.Popen([binary, "serve"], env=environment, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode().strip()
        host, port = line.rsplit("/", 1)[1].rsplit(":", 1)
        self.address = (host, int(port))
        self.max_rss = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _sample(self):
        while self._sampling and self.proc.poll() is None:
            try:
                self.max_rss = max(self.max_rss, self.rss())
            except OSError:
                return
            time.sleep(0.1)

    async def ready(self):
        for _ in range(600):
            try:
                status, _ = await api(self, "GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("server not healthy")

    def stop(self):
        self._sampling = False
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# intake at a fixed rate


async def intake(server, flow, rate, secs):
    body = event_body().encode()
    headers = {"Content-Type": "application/json"}
    slots = asyncio.Queue()
    latencies, acknowledged, errors = [], [], []
    conns = [Conn(*server.address) for _ in range(INTAKE_CONNS)]
    for c in conns:
        await c.open()

    async def worker(conn):
        while True:
            scheduled = await slots.get()
            if scheduled is None:
                return
            try:
                status, data = await conn.request("POST", f"/v1/webhooks/{flow}", body, headers)
                if status == 202:
                    acknowledged.append(json.loads(data)["runId"])
                    latencies.append(time.monotonic() - scheduled)
                else:
                    errors.append(status)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as e:
                errors.append(type(e).__name__)
                conn.close()

    workers = [asyncio.create_task(worker(c)) for c in conns]
    start = time.monotonic()
    n = int(rate * secs)
    for i in range(n):
        at = start + i / rate
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        slots.put_nowait(at)
    for _ in workers:
        slots.put_nowait(None)
    await asyncio.gather(*workers)
    for c in conns:
        c.close()
    return {"sent": n, "latencies": latencies, "acknowledged": acknowledged, "errors": errors}


async def lost_runs(server, run_ids):
    """Acknowledged run ids the server does not know."""
    lost = []
    queue = list(run_ids)

    async def check():
        conn = Conn(*server.address)
        while queue:
            run_id = queue.pop()
            status, _ = await conn.request("GET", f"/v1/flow-runs/{run_id}", b"", admin_headers())
            if status != 200:
                lost.append(run_id)
        conn.close()

    await asyncio.gather(*(check() for _ in range(8)))
    return lost


# ---------------------------------------------------------------------------------------------
# attacks: each is an async function that runs until cancelled and returns a dict of notes


async def sync_flood(server, notes):
    status, flow = await api(server, "POST", "/v1/flows", {
        "name": "slow", "trigger": {"type": "webhook"},
        "steps": [{"name": "nap", "type": "action", "plugin": "hostile@0.1.0",
                   "input": {"mode": "sleep", "ms": 1000}}],
    })
    assert status == 201, flow
    body = json.dumps({"pad": "x" * (16 << 10)}).encode()
    counts = notes.setdefault("answers", {})

    async def client():
        conn = Conn(*server.address)
        while True:
            try:
                status, _ = await conn.request(
                    "POST", f"/v1/webhooks/{flow['id']}/sync?timeoutMs=5000", body,
                    {"Content-Type": "application/json"})
                counts[status] = counts.get(status, 0) + 1
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                conn.close()
                await asyncio.sleep(0.1)

    await asyncio.gather(*(client() for _ in range(SYNC_CLIENTS)))


async def slowloris(server, notes):
    notes.update({"cut": 0, "probe_ms": [], "probe_failures": 0})
    head = b"POST /v1/webhooks/x HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100000

    async def client():
        # Staggered, as a crowd arrives: not every connection cut in the same instant.
        await asyncio.sleep(random.uniform(0, 10))
        while True:
            try:
                _, writer = await asyncio.open_connection(*server.address)
                for byte in head:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(1)
            except (OSError, ConnectionError) as e:
                notes["cut"] += 1
                kinds = notes.setdefault("cut_kinds", {})
                kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
                await asyncio.sleep(0.05)

    async def probe():
        while True:
            started = time.monotonic()
            conn = Conn(*server.address)
            try:
                status, _ = await asyncio.wait_for(conn.request("GET", "/healthz"), 30)
                notes["probe_ms"].append((time.monotonic() - started) * 1000)
                if status != 200:
                    notes["probe_failures"] += 1
            except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
                notes["probe_failures"] += 1
            finally:
                conn.close()
            await asyncio.sleep(0.5)

    await asyncio.gather(probe(), *(client() for _ in range(SLOW_CLIENTS)))


async def host_memory(server, notes):
    fetches = ("exports.handler = async () => { let n = 0; for (let i = 0; i < 2000; i++) "
               "{ try { await fetch('https://example.com/x', {method: 'POST', body: 'x'.repeat(4096)}); } "
               "catch (e) { n++; } } return n; };")
    flows = []
    for name, step in [
        ("fields", {"name": "hoard", "type": "action", "plugin": "hostile@0.1.0",
                    "input": {"mode": "fields"}, "timeoutMs": 5000}),
        ("fetch", {"name": "calls", "type": "action", "plugin": "javascript@1.0.0",
                   "input": {"code": fetches}, "timeoutMs": 20000}),
    ]:
        status, flow = await api(server, "POST", "/v1/flows", {
            "name": name, "trigger": {"type": "webhook"}, "steps": [step]})
        assert status == 201, flow
        flows.append(flow["id"])
    notes["runs"] = 0
    conn = Conn(*server.address)
    while True:
        for flow in flows:
            status, _ = await conn.request("POST", f"/v1/webhooks/{flow}", b"{}",
                                           {"Content-Type": "application/json"})
            notes["runs"] += status == 202
        await asyncio.sleep(0.125)


async def huge_body(server, notes):
    notes["requests"] = 0
    body_size = 1_500_000_000
    chunk = b"\0" * (1 << 16)

    async def answer(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                notes["requests"] += 1
                writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                             + f"Content-Length: {body_size}\r\n\r\n".encode())
                sent = 0
                while sent < body_size:
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    receiver = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = receiver.sockets[0].getsockname()[1]
    for i in range(4):
        status, dest = await api(server, "POST", "/v1/event-destinations", {
            "name": f"huge{i}", "url": f"http://127.0.0.1:{port}/in{i}",
            "events": ["flow.run.finished"]})
        assert status == 201, dest
    try:
        await asyncio.Event().wait()
    finally:
        receiver.close()


class Remote:
    """The server as an attacker process sees it: an address."""

    def __init__(self, address):
        self.address = address


def attack_main(name, address, pipe):
    """Runs scenario `name`'s attack on `address` until told to stop; sends back its notes."""

    async def run():
        notes = {}
        task = asyncio.create_task(SCENARIOS[name][0](Remote(address), notes))
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception as e:  # noqa: BLE001 - reported with the results
            notes["attack_error"] = repr(e)
        pipe.send(notes)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    asyncio.run(run())


SCENARIOS = {
    "quiet": (None, {}),
    "sync-flood": (sync_flood, {}),
    "slowloris": (slowloris, {}),
    "host-memory": (host_memory, {}),
    "huge-body": (huge_body, {"HOOKFLOW_DEV_ALLOW_LOCAL_DESTINATIONS": "1",
                              "HOOKFLOW_DELIVERY_RETRY_SCHEDULE": "0.2,0.2,0.2,0.2,0.2"}),
}


async def scenario(args, name, cache_dir, plugin_dir):
    attack, env = SCENARIOS[name]
    server = Server(args.bin, cache_dir, plugin_dir, env)
    try:
        await server.ready()
        status, flow = await api(server, "POST", "/v1/flows",
                                 {"name": "intake", "trigger": {"type": "webhook"}, "steps": []})
        assert status == 201, flow
        rss_start = server.rss()
        notes = {}
        attacker = None
        if attack:
            # The attack runs in a process of its own, so its event loop does not delay the
            # intake client's (which would count as server latency).
            pipe, child_pipe = multiprocessing.Pipe()
            attacker = multiprocessing.Process(
                target=attack_main, args=(name, server.address, child_pipe), daemon=True)
            attacker.start()
        await asyncio.sleep(2)
        load = await intake(server, flow["id"], args.rate, args.secs)
        if attacker:
            pipe.send("stop")
            loop = asyncio.get_running_loop()
            if await loop.run_in_executor(None, pipe.poll, 30):
                notes = pipe.recv()
            attacker.join(10)
            if attacker.is_alive():
                attacker.kill()
        lost = await lost_runs(server, load["acknowledged"])
        lat = sorted(load["latencies"])
        if "probe_ms" in notes:
            probes = sorted(notes.pop("probe_ms"))
            notes["probe_p50_ms"] = round(percentile(probes, 0.5), 1) if probes else None
            notes["probe_max_ms"] = round(probes[-1], 1) if probes else None
            notes["probes"] = len(probes)
        if "answers" in notes:
            notes["answers"] = {str(k): v for k, v in notes["answers"].items()}
        return {
            "scenario": name,
            "sent": load["sent"],
            "acknowledged": len(load["acknowledged"]),
            "errors": len(load["errors"]),
            "error_kinds": sorted(set(map(str, load["errors"])))[:5],
            "lost": len(lost),
            "p50_ms": round(percentile(lat, 0.5) * 1000, 2) if lat else None,
            "p99_ms": round(percentile(lat, 0.99) * 1000, 2) if lat else None,
            "max_ms": round(lat[-1] * 1000, 2) if lat else None,
            "rss_start_mib": round(rss_start / 2**20, 1),
            "rss_max_mib": round(server.max_rss / 2**20, 1),
            "notes": notes,
        }
    finally:
        server.stop()


def markdown(results):
    quiet = next((r for r in results if r["scenario"] == "quiet"), None)
    rows = ["| scenario | acknowledged / sent | errors | lost | p50 ms | p99 ms | p99 / quiet | max ms "
            "| RSS max MiB | notes |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        ratio = (f"{r['p99_ms'] / quiet['p99_ms']:.2f}×"
                 if quiet and quiet["p99_ms"] and r["p99_ms"] else "—")
        rows.append(f"| {r['scenario']} | {r['acknowledged']} / {r['sent']} | {r['errors']} "
                    f"| {r['lost']} | {r['p50_ms']} | {r['p99_ms']} | {ratio} | {r['max_ms']} "
                    f"| {r['rss_max_mib']} | {json.dumps(r['notes'])} |")
    return "\n".join(rows)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "hookflow"))
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--secs", type=float, default=15)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--out", default=os.path.join(HERE, "out", "attack.json"))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    cache_dir = os.path.join(os.path.dirname(args.out), "attack-plugin-cache")
    plugin_dir = tempfile.mkdtemp(prefix="hookflow-attack-plugins-")
    shutil.copy(HOSTILE, os.path.join(plugin_dir, "hostile.wasm"))
    results = []
    try:
        for name in args.only.split(","):
            result = await scenario(args, name, cache_dir, plugin_dir)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        shutil.rmtree(plugin_dir, ignore_errors=True)
    with open(args.out, "w") as f:
        json.dump({"rate": args.rate, "secs": args.secs, "bin": args.bin, "results": results}, f,
                  indent=2)
    print(markdown(results))


if __name__ == "__main__":
    asyncio.run(main())
