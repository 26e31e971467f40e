"""`sfq schedule` against the functions as a real server (`all` on loopback)."""

from __future__ import annotations

import json
from pathlib import Path

from shared.cli import api as cli_api

QUEUE = {"symbol": "BTCUSDT", "time_range": "yesterday",
         "requests": [{"target": "loader-producer", "type": "api_candles_1d"}]}


def test_create_list_show_pause_resume_delete(sfq, server, tmp_path: Path) -> None:
    queue = tmp_path / "queue.json"
    queue.write_text(json.dumps(QUEUE))
    code, out, err = sfq("schedule", "create", str(queue), "--name", "nightly", "--cron", "30 1 * * *",
                         "--timezone", "Europe/Berlin", "--concurrency", "forbid")
    assert code == cli_api.OK, err
    lines = out.splitlines()
    assert lines[0] == "Schedule created"
    assert lines[1] == "nightly  30 1 * * *  Europe/Berlin  active  concurrency forbid, catch-up 3"
    assert lines[2] == "queue: BTCUSDT yesterday"
    assert lines[3].startswith("next: ") and lines[3].count("T") == 5  # five fire times
    whole = tmp_path / "hourly.json"
    whole.write_text(json.dumps({"name": "hourly", "cron": "@hourly", "queue": {**QUEUE, "symbol": "ETHUSDT"}}))
    assert sfq("schedule", "create", str(whole))[0] == cli_api.OK

    code, out, _ = sfq("schedule", "ls")
    assert code == cli_api.OK
    rows = out.splitlines()
    assert rows[0].split() == ["NAME", "CRON", "TIME", "ZONE", "NEXT", "LAST", "RUN"]
    assert [r.split()[0] for r in rows[1:3]] == ["hourly", "nightly"] and rows[-1] == "2 of 2 schedule(s)"

    code, out, _ = sfq("schedule", "pause", "nightly")
    assert code == cli_api.OK and out.splitlines()[0] == "Schedule paused"
    assert "  paused  " in out.splitlines()[1] and "next: -" in out
    code, out, _ = sfq("--json", "schedule", "nightly")
    assert code == cli_api.OK and json.loads(out)["paused"] is True
    code, out, _ = sfq("schedule", "resume", "nightly")
    assert code == cli_api.OK and "  active  " in out.splitlines()[1]
    code, out, _ = sfq("schedule", "delete", "nightly")
    assert code == cli_api.OK and out.strip() == "Schedule deleted (its queues stay)"
    code, _, err = sfq("schedule", "nightly")
    assert code == cli_api.REFUSED and "404" in err


def test_refusals_are_usage_or_refused(sfq, tmp_path: Path) -> None:
    queue = tmp_path / "queue.json"
    queue.write_text(json.dumps(QUEUE))
    code, _, err = sfq("schedule", "create", str(queue), "--name", "x")  # no cron
    assert code == cli_api.USAGE and "cron" in err
    code, _, err = sfq("schedule", "create", str(queue), "--name", "x", "--cron", "61 * * * *")
    assert code == cli_api.REFUSED and "422" in err
    code, _, err = sfq("schedule", "pause")
    assert code == cli_api.USAGE
    code, _, err = sfq("schedule", "create", str(tmp_path / "missing.json"), "--name", "x", "--cron", "@daily")
    assert code == cli_api.USAGE and "cannot read" in err
