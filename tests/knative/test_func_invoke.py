"""`func invoke` (the real CLI, v0.49.2) against the functions running locally: the
all-in-one target `all`, and `handle` from functions/main.py configured by func.yaml's env
(QM_FUNCTION=all), as the image runs it. `--path` is a copy of the project's func.yaml.

The answers must be the real results: the queue exists afterwards (GET /queues/{id}), the
listing shows it, a stop stops it. In cloudevent format func exits 0 even when the function
fails, so each step is also checked on the server side.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

from shared.examples import load
from tests.servers import ROOT, FunctionServer

HISTORICAL = ROOT / "shared" / "examples" / "historical.json"


def invoke(func_bin: Path, env: dict[str, str], fn_dir: Path, target: str, *args: str) -> str:
    proc = subprocess.run([str(func_bin / "func"), "invoke", "--path", str(fn_dir), "--target", target, *args],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def reply_event(out: str) -> tuple[dict[str, str], Any]:
    """The reply event as func prints it: 'Context Attributes,' lines, then 'Data,' and the JSON."""
    assert "Context Attributes," in out, out
    head, _, data = out.partition("Data,")
    attrs = dict(m.groups() for m in re.finditer(r"^\s+([a-z]+): (.*)$", head.split("Context Attributes,")[1], re.M))
    return attrs, json.loads(data)


def queue(server: FunctionServer, queue_id: str) -> dict:
    code, body = server.call("GET", f"/queues/{queue_id}")
    assert code == 200, body
    return body["data"]


def test_http_file_starts_the_seed_pipeline(func_bin, func_env, fn_dir, server) -> None:
    out = invoke(func_bin, func_env, fn_dir, f"{server.url}/queues/start", "--format", "http",
                 "--file", str(HISTORICAL), "--content-type", "application/json")
    reply = json.loads(out)
    assert reply["message"] == "Queue started", reply
    queue_id = reply["data"]["queue_id"]
    assert len(reply["data"]["jobs"]) == 6

    state = queue(server, queue_id)
    assert state["symbol"] == "BTCUSDT" and state["time_range"] == "2024-06-01:2024-06-30"
    assert len(state["jobs"]) == 6
    assert [j["target"] for j in state["jobs"]] == [r["target"] for r in load("historical")["requests"]]

    # the listing, through func invoke too (GET; func still sends its default body, ignored)
    listed = json.loads(invoke(func_bin, func_env, fn_dir, f"{server.url}/queues", "--format", "http",
                               "--request-type", "GET"))
    assert [q["id"] for q in listed["data"]] == [queue_id]
    assert listed["page"]["total"] == 1


def test_http_data_uses_func_yaml_default_format(func_bin, func_env, fn_dir, server) -> None:
    # no --format: func.yaml's `invoke: http` applies, so the answer is the plain JSON envelope;
    # POST / (what `func invoke --target remote` sends to) starts a queue by the payload's shape
    out = invoke(func_bin, func_env, fn_dir, f"{server.url}/", "--data", json.dumps(load("legacy")))
    reply = json.loads(out)
    queue_id = reply["data"]["queue_id"]
    assert [j["target"] for j in reply["data"]["jobs"]] == ["loader-producer"]
    assert queue(server, queue_id)["status"] == reply["data"]["status"]

    out = invoke(func_bin, func_env, fn_dir, f"{server.url}/queues/{queue_id}/stop", "--format", "http",
                 "--data", "{}")
    assert json.loads(out)["data"]["status"] in ("stopping", "stopped")
    assert queue(server, queue_id)["status"] in ("stopping", "stopped")


def test_cloudevent_start_replies_with_the_started_event(func_bin, func_env, fn_dir, server) -> None:
    event_id = str(uuid.uuid4())
    args = ("--format", "cloudevent", "--type", "dev.streamforge.queue.start", "--source", "/streamforge/test",
            "--id", event_id, "--file", str(HISTORICAL), "--content-type", "application/json")
    attrs, data = reply_event(invoke(func_bin, func_env, fn_dir, f"{server.url}/", *args))
    queue_id = data["data"]["queue_id"]
    assert attrs["type"] == "dev.streamforge.queue.started"
    assert attrs["subject"] == queue_id and attrs["id"] == f"{queue_id}/started"
    assert data["message"] == "Queue started"
    assert len(queue(server, queue_id)["jobs"]) == 6

    # the same event again (a broker retry): same queue, nothing started twice
    attrs, data = reply_event(invoke(func_bin, func_env, fn_dir, f"{server.url}/", *args))
    assert data["data"]["queue_id"] == queue_id and "already started" in data["message"]
    assert server.call("GET", "/queues")[1]["page"]["total"] == 1


def test_cloudevent_stop(func_bin, func_env, fn_dir, server) -> None:
    code, body = server.call("POST", "/queues/start", load("historical"))
    assert code == 200, body
    queue_id = body["data"]["queue_id"]

    out = invoke(func_bin, func_env, fn_dir, f"{server.url}/", "--format", "cloudevent",
                 "--type", "dev.streamforge.queue.stop", "--data", json.dumps({"queue_id": queue_id}))
    attrs, data = reply_event(out)
    assert attrs["type"] == "dev.streamforge.queue.stopped" and attrs["subject"] == queue_id
    assert data["data"]["queue_id"] == queue_id
    state = queue(server, queue_id)
    assert state["status"] == "stopped"
    assert {j["status"] for j in state["jobs"]} <= {"stopped", "skipped"}


def test_cloudevent_error_is_only_visible_server_side(func_bin, func_env, fn_dir, server) -> None:
    # an invalid start: func prints nothing and exits 0 (see tests/infra), the function said 4xx
    out = invoke(func_bin, func_env, fn_dir, f"{server.url}/", "--format", "cloudevent",
                 "--type", "dev.streamforge.queue.start", "--data", json.dumps({"symbol": "BTCUSDT"}))
    assert "Context Attributes," not in out
    assert server.call("GET", "/queues")[1]["page"]["total"] == 0
