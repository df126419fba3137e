#!/usr/bin/env python3
"""Writes the sample event sequences that ship with the detection templates
(templates/handlers/<template>.events.jsonl), built from the catalog samples so they have the
shape each product sends. Deterministic: rerun after changing a catalog sample and commit the
result. Each file holds exactly one crossing (or, for the templates without a threshold step,
the events the header below names), plus near misses: one event short, other keys, a
redelivered duplicate, events out of order. tests/e2e/detections.rs replays every file and
checks what fires.

    python3 tools/detections/make-sequences.py
"""
import copy
import json
import pathlib
from datetime import datetime, timedelta, timezone

ROOT = pathlib.Path(__file__).resolve().parents[2]
EVENTS = ROOT / "templates" / "events"
OUT = ROOT / "templates" / "handlers"


def catalog(source):
    doc = json.loads((EVENTS / f"{source}.json").read_text())
    return {e["name"]: e["sample"] for e in doc["events"]}


def iso(t):
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def write(name, events):
    path = OUT / f"{name}.events.jsonl"
    with path.open("w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    print(f"{path.relative_to(ROOT)}: {len(events)} lines")


AP = catalog("activepieces")
MON = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday


def ap(action, n, t, **fields):
    base = copy.deepcopy(AP.get(action) or AP["user.signed.in"])
    base.update({"id": f"ap-{action}-{n}", "action": action, "created": iso(t), "updated": iso(t)})
    for key, value in fields.items():
        if key == "data":
            base.setdefault("data", {}).update(value)
        else:
            base[key] = value
    return base


def brute_force():
    out = []
    t = MON
    # Noise: a successful sign-in, and four failures for bob (one short of the threshold).
    out.append(ap("user.signed.in", "ok-1", t, userEmail="alice@example.com", ip="192.0.2.10", data={"success": True}))
    for i in range(4):
        out.append(ap("user.signed.in", f"bob-{i}", t + timedelta(minutes=10 * i), userEmail="bob@example.com", ip="198.51.100.7", data={"success": False}))
    # mallory: five failures from one IP within 25 minutes -> the alert, on the fifth.
    for i in range(5):
        out.append(ap("user.signed.in", f"mallory-{i}", t + timedelta(minutes=5 * i), userEmail="mallory@example.com", ip="203.0.113.9", data={"success": False}))
    # The same attack goes on: quiet (suppressed), one redelivered, one arriving late.
    out.append(ap("user.signed.in", "mallory-5", t + timedelta(minutes=30), userEmail="mallory@example.com", ip="203.0.113.9", data={"success": False}))
    out.append(copy.deepcopy(out[-1]))
    out.append(ap("user.signed.in", "mallory-late", t + timedelta(minutes=2), userEmail="mallory@example.com", ip="203.0.113.9", data={"success": False}))
    # Five failures for mallory from another IP, spread over three hours: no alert.
    for i in range(5):
        out.append(ap("user.signed.in", f"mallory-slow-{i}", t + timedelta(minutes=45 * i), userEmail="mallory@example.com", ip="192.0.2.99", data={"success": False}))
    return out


def bulk_deletions():
    out = []
    t = MON
    for i in range(11):
        action = "flow.deleted" if i % 2 == 0 else "connection.deleted"
        out.append(ap(action, f"dave-{i}", t + timedelta(seconds=50 * i), userEmail="dave@example.com"))
    for i in range(10):
        out.append(ap("flow.deleted", f"erin-{i}", t + timedelta(seconds=55 * i), userEmail="erin@example.com"))
    out.append(ap("flow.created", "dave-created", t, userEmail="dave@example.com"))
    return out


def off_hours():
    out = []
    # Berlin is UTC+1 until 2026-03-29, then UTC+2.
    out.append(ap("flow.updated", "weekday-day", datetime(2026, 3, 3, 10, 0, tzinfo=timezone.utc), userEmail="alice@example.com"))
    out.append(ap("flow.updated", "weekday-evening", datetime(2026, 3, 3, 18, 30, tzinfo=timezone.utc), userEmail="alice@example.com"))  # 19:30 Berlin: off hours
    out.append(ap("flow.deleted", "saturday", datetime(2026, 3, 7, 11, 0, tzinfo=timezone.utc), userEmail="bob@example.com"))  # weekend
    out.append(ap("connection.deleted", "before-dst", datetime(2026, 3, 27, 6, 30, tzinfo=timezone.utc), userEmail="carol@example.com"))  # Fri 07:30 CET: off hours
    out.append(ap("connection.deleted", "after-dst", datetime(2026, 3, 30, 6, 30, tzinfo=timezone.utc), userEmail="carol@example.com"))  # Mon 08:30 CEST: business hours
    run = copy.deepcopy(AP["flow.run.finished"])
    run.update({"id": "ap-run-night", "created": iso(datetime(2026, 3, 4, 2, 0, tzinfo=timezone.utc))})
    run.pop("userEmail", None)
    out.append(run)
    return out


def admin_role():
    out = []
    granted = ap("project.role.updated", "granted", MON, userEmail="alice@example.com")
    granted["data"]["projectRole"]["name"] = "Project Owner"
    granted["data"]["projectRole"]["permissions"] = ["READ_FLOW", "WRITE_FLOW", "WRITE_PROJECT_MEMBER"]
    out.append(granted)
    harmless = ap("project.role.updated", "harmless", MON + timedelta(minutes=5), userEmail="alice@example.com")
    harmless["data"]["projectRole"]["permissions"] = ["READ_FLOW", "READ_PROJECT_MEMBER"]
    out.append(harmless)
    created = ap("project.role.created", "created", MON + timedelta(minutes=9), userEmail="bob@example.com")
    created["data"]["projectRole"]["name"] = "Member Admin"
    created["data"]["projectRole"]["permissions"] = ["WRITE_PROJECT_MEMBER"]
    out.append(created)
    return out


def gitlab():
    sample = catalog("gitlab")["repository_git_operation"]
    out = []
    t = MON

    def op(n, when, author_id, author, project, action="git-upload-pack"):
        e = copy.deepcopy(sample)
        e.update({"id": f"gl-{n}", "author_id": author_id, "author_name": author, "entity_path": project, "created_at": iso(when), "target_details": project.split("/")[-1]})
        e["details"].update({"author_name": author, "entity_path": project, "author_class": "User", "custom_message": {"protocol": "https", "action": action}})
        return e

    # A CI deploy key pulling the same project all day: one distinct project, no alert.
    for i in range(30):
        out.append(op(f"ci-{i}", t + timedelta(minutes=i), -3, "deploy-key-ci", "example-group/payments-api"))
    # Author 43 clones nine projects: one short.
    for i in range(9):
        out.append(op(f"u43-{i}", t + timedelta(minutes=i), 43, "sam", f"example-group/project-{i}"))
    # Author 42 clones ten different projects within twelve minutes (some twice) -> the alert.
    for i in range(10):
        out.append(op(f"u42-{i}", t + timedelta(minutes=i + 1), 42, "eve", f"example-group/project-{i}"))
        if i % 3 == 0:
            out.append(op(f"u42-again-{i}", t + timedelta(minutes=i + 1, seconds=20), 42, "eve", f"example-group/project-{i}"))
    # Pushes do not count.
    out.append(op("u42-push", t + timedelta(minutes=3), 42, "eve", "example-group/project-77", action="git-receive-pack"))
    return out


def auth0_failed_logins():
    logs = catalog("auth0-logs")
    out = []
    t = MON

    def entry(code, n, when, user, ip):
        e = copy.deepcopy(logs[code])
        e["log_id"] = f"90020260302{n:035d}"
        e["data"].update({"log_id": e["log_id"], "date": iso(when), "user_name": user, "ip": ip})
        return e

    n = 0
    batch = []
    for i in range(5):
        n += 1
        e = entry("fp", n, t + timedelta(minutes=7 * i), "jane.doe@example.com", "198.51.100.77")
        if i < 2:
            batch.append(e)  # the first two arrive as one Log Streams batch (a JSON array line)
        else:
            out.append(e)
    out.insert(0, batch)
    for i in range(4):
        n += 1
        out.append(entry("fu", n, t + timedelta(minutes=3 * i), "admin@example.com", "203.0.113.50"))
    n += 1
    out.append(entry("s", n, t + timedelta(minutes=40), "jane.doe@example.com", "192.0.2.1"))
    return out


def auth0_deletions():
    sample = catalog("auth0")["user.deleted"]
    out = []

    def deleted(n, tenant, when):
        e = copy.deepcopy(sample)
        e.update({"id": f"evt_del_{tenant}_{n}", "time": iso(when), "a0tenant": tenant, "source": f"urn:auth0:{tenant}.us.auth0.com"})
        e["data"]["object"]["user_id"] = f"auth0|{tenant}{n:04d}"
        e["data"]["object"]["email"] = f"user{n}@{tenant}.example.com"
        return e

    for i in range(10):
        out.append(deleted(i, "acme", MON + timedelta(seconds=45 * i)))
    for i in range(9):
        out.append(deleted(i, "beta", MON + timedelta(seconds=30 * i)))
    return out


if __name__ == "__main__":
    write("brute-force-sign-ins", brute_force())
    write("bulk-deletions", bulk_deletions())
    write("off-hours-activity", off_hours())
    write("admin-role-granted", admin_role())
    write("gitlab-mass-downloads", gitlab())
    write("auth0-failed-logins", auth0_failed_logins())
    write("auth0-user-deletion-burst", auth0_deletions())
