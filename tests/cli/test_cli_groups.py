"""`sfq start --symbols` and `sfq group` against the functions as a real server (`all` on loopback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.cli import api as cli_api

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def _template(tmp_path: Path) -> str:
    path = tmp_path / "template.json"
    path.write_text(json.dumps({"symbol": "XRPUSDT", "time_range": "2024-01-01:2024-01-03",
                                "requests": [{"target": "loader-producer", "type": "api_trades"}]}))
    return str(path)


def _start(sfq, tmp_path: Path, *extra: str) -> dict[str, Any]:
    code, out, err = sfq("--json", "start", "-f", _template(tmp_path), "--symbols", ",".join(SYMBOLS), *extra)
    assert code == cli_api.OK, err
    return json.loads(out)


def _report(server, queue_id: str, status: str) -> None:
    code, queue = server.call("GET", f"/queues/{queue_id}")
    assert code == 200, queue
    body = {"type": "telemetry", "queue_id": queue_id, "job_id": queue["data"]["jobs"][0]["id"], "status": status}
    code, reply = server.call("POST", "/telemetry", body)
    assert code == 200 and reply["data"]["outcome"] == "applied", reply


def test_start_with_symbols_starts_a_group_and_prints_its_queues(sfq, tmp_path):
    code, out, err = sfq("start", "-f", _template(tmp_path), "--symbols", "btcusdt, ETHUSDT,SOLUSDT")
    assert code == cli_api.OK, err
    lines = out.splitlines()
    assert lines[0].startswith("Group started: 3 queue(s): group ")
    assert [line.split()[0] for line in lines[1:]] == list(SYMBOLS)
    assert all(line.split()[2] in ("pending", "loading") for line in lines[1:])


def test_group_shows_status_progress_and_each_queue(sfq, server, tmp_path):
    data = _start(sfq, tmp_path)
    first = data["queues"][0]["queue_id"]
    _report(server, first, "finished")
    code, out, err = sfq("group", data["group_id"])
    assert code == cli_api.OK, err
    lines = out.splitlines()
    assert lines[0].startswith(f"group {data['group_id']}  ")
    assert " 33%  1/3 jobs  2024-01-01:2024-01-03" in lines[0]
    assert lines[2].split() == ["SYMBOL", "QUEUE", "ID", "STATUS", "DONE"]
    assert lines[3].split() == ["BTCUSDT", first, "finished", "100%"]
    assert [line.split()[0] for line in lines[3:]] == list(SYMBOLS)


def test_group_stop_stops_every_queue_then_says_nothing_to_stop(sfq, tmp_path):
    data = _start(sfq, tmp_path)
    code, out, err = sfq("group", "stop", data["group_id"], "--reason", "enough")
    assert code == cli_api.OK, err
    assert out.splitlines()[0] == "Group stopped: 3 queue(s) stopped"
    assert [line.split()[2] for line in out.splitlines()[1:]] == ["stopped"] * 3
    code, out, _ = sfq("group", "stop", data["group_id"])
    assert code == cli_api.OK and out.splitlines()[0] == "Group already ended; nothing to stop"
    code, out, _ = sfq("--json", "group", data["group_id"])
    assert json.loads(out)["status"] == "stopped"


def test_group_retry_reruns_the_failed_queue_only(sfq, server, tmp_path):
    data = _start(sfq, tmp_path)
    ids = [q["queue_id"] for q in data["queues"]]
    _report(server, ids[1], "error")
    _report(server, ids[2], "finished")
    code, out, err = sfq("--json", "group", "retry", data["group_id"])
    assert code == cli_api.OK, err
    assert json.loads(out)["retried"] == [ids[1]]
    code, out, _ = sfq("group", "retry", data["group_id"])
    assert code == cli_api.OK and out.splitlines()[0] == "No queue of the group has failed; nothing retried"


def test_group_ls_lists_groups_and_an_unknown_group_is_refused(sfq, tmp_path):
    data = _start(sfq, tmp_path)
    code, out, err = sfq("group", "ls")
    assert code == cli_api.OK, err
    assert out.splitlines()[1].split()[:2] == [data["group_id"], "3"]
    assert out.splitlines()[-1] == "1 group(s)"
    code, _, err = sfq("group", "00000000-0000-0000-0000-000000000000")
    assert code == cli_api.REFUSED and "404" in err
    code, _, err = sfq("group", "stop")
    assert code == cli_api.USAGE and "usage: sfq group" in err


def test_start_with_symbols_and_watch_follows_the_group_to_its_end(sfq, server, tmp_path, monkeypatch):
    from shared.cli import groups

    calls = []

    def finish_all(seconds: float) -> None:  # between polls, the queues finish
        calls.append(seconds)
        code, page = server.call("GET", "/queues")
        for queue in page["data"]:
            if queue["status"] != "finished":
                _report(server, queue["id"], "finished")

    monkeypatch.setattr(groups, "sleep", finish_all)
    code, out, err = sfq("start", "-f", _template(tmp_path), "--symbols", ",".join(SYMBOLS), "--watch")
    assert code == cli_api.OK, err
    assert calls and "finished  100%  3/3 jobs" in out.splitlines()[-1]
