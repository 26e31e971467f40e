"""`sfq coverage` and `sfq repair` against the functions as a real server (`all` on loopback)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from shared import cli
from shared.cli import api as cli_api

TYPE = "api_candles_5m"
GAP = {"from": "2024-03-10T00:00:00Z", "to": "2024-03-11T12:00:00Z"}
RANGE = ("--from", "2023-11-01", "--to", "2024-08-31")


def _report(server, queue_id: str, job_id: str, records: int, **extra: Any) -> None:
    body = {"type": "telemetry", "queue_id": queue_id, "job_id": job_id, "status": "finished",
            "records_written": records, **extra}
    code, reply = server.call("POST", "/telemetry", body)
    assert code == 200 and reply["data"]["outcome"] == "applied", reply


def _backfill(sfq, server, tmp_path: Path) -> tuple[str, list[dict[str, Any]]]:
    """A Jan-Jun 2024 backfill by month: Jan-Mar loaded (March with a gap), Apr-Jun in flight."""
    payload = tmp_path / "backfill.json"
    payload.write_text(json.dumps({
        "symbol": "BTCUSDT", "time_range": "2024-01-01:2024-06-30", "partition": "month",
        "on_failure": "continue",
        "requests": [{"target": "loader-producer", "type": TYPE, "interval": "5m"},
                     {"target": "arango-connector", "type": TYPE}]}))
    code, out, err = sfq("--json", "start", "-f", str(payload))
    assert code == 0, err
    data = json.loads(out)
    for job in data["jobs"]:
        if job["period"] in ("2024_01", "2024_02", "2024_03"):
            _report(server, data["queue_id"], job["id"], 1000, **({"gaps": [GAP]} if job["period"] == "2024_03"
                                                                   else {}))
    return data["queue_id"], data["jobs"]


def test_coverage_prints_a_strip_per_year_with_legend_summary_gaps_and_queues(sfq, server, tmp_path):
    queue_id, _ = _backfill(sfq, server, tmp_path)
    code, out, err = sfq("coverage", "btcusdt", TYPE, *RANGE)
    assert code == cli_api.OK, err
    lines = out.splitlines()
    assert lines[0] == "BTCUSDT api_candles_5m  2023-11-01 -> 2024-08-31  by month"
    assert lines[1] == "         JFMAMJJASOND"
    assert lines[2] == "2023" + " " * 15 + ".."  # November, December: missing
    assert lines[3] == "2024     ##%~~~.."  # loaded, loaded, gaps, in flight x3, missing x2
    assert "# loaded" in lines[4] and "~ in flight" in lines[4] and "% partial or gaps" in lines[4]
    assert lines[5] == "10 month(s): 3 loaded, 3 in flight, 4 missing"
    assert lines[6] == "gaps:"
    assert lines[7] == f"  2024_03    {GAP['from']} to {GAP['to']}  queue {queue_id}"
    assert lines[8] == "not loaded yet:"
    assert lines[9:12] == [f"  2024_0{m}    in_flight queue {queue_id}" for m in (4, 5, 6)]
    assert lines[12:] == ["covering queues:", f"  {queue_id}  6 period(s), 2024_01..2024_06"]


def test_coverage_on_a_utf8_terminal_uses_blocks(server, sfq, tmp_path):
    _backfill(sfq, server, tmp_path)
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")
    code = cli.main(["--url", server.url, "coverage", "BTCUSDT", TYPE, "--from", "2024-01-01", "--to", "2024-12-31"],
                    out=out)
    out.flush()
    lines = raw.getvalue().decode("utf-8").splitlines()
    assert code == cli_api.OK
    assert lines[0] == "BTCUSDT api_candles_5m  2024-01-01 → 2024-12-31  by month"
    assert lines[2] == "2024     ██◐▒▒▒······"


def test_coverage_by_day_lines_up_days_per_month(sfq, server, tmp_path):
    _backfill(sfq, server, tmp_path)
    code, out, err = sfq("coverage", "BTCUSDT", TYPE, "--from", "2024-03-30", "--to", "2024-04-02",
                         "--partition", "day")
    assert code == cli_api.OK, err
    lines = out.splitlines()
    assert lines[1] == "         1234567890123456789012345678901"
    assert lines[2] == "2024-03  " + " " * 29 + "##"  # the month's gap is on the 10th and 11th
    assert lines[3] == "2024-04  ~~"
    assert lines[5] == "4 day(s): 2 loaded, 2 in flight"


def test_coverage_json_is_the_service_answer(sfq, server, tmp_path):
    queue_id, _ = _backfill(sfq, server, tmp_path)
    code, out, err = sfq("--json", "coverage", "BTCUSDT", TYPE, *RANGE)
    assert code == cli_api.OK, err
    data = json.loads(out)
    assert data["summary"] == {"missing": 4, "loaded": 3, "in_flight": 3}
    by = {p["period"]: p for p in data["periods"]}
    assert by["2024_03"]["gaps"] == [GAP] and by["2024_03"]["queue_id"] == queue_id


def test_coverage_usage_and_refusals(sfq, server, capsys):
    with pytest.raises(SystemExit) as exit_:
        sfq("coverage", "BTCUSDT", TYPE, "--to", "2024-01-31")
    assert exit_.value.code == cli_api.USAGE and "required: --from" in capsys.readouterr().err
    code, _, err = sfq("coverage", "BTCUSDT", TYPE, "--from", "2024-02-30", "--to", "2024-03-31")
    assert code == cli_api.REFUSED and "400: from must be a real date" in err
    code, _, err = sfq("coverage", "BTCUSDT", TYPE, "--from", "2024-04-01", "--to", "2024-03-31")
    assert code == cli_api.REFUSED and "is after to" in err


def test_repair_relaunches_the_gap_month(sfq, server, tmp_path):
    queue_id, jobs = _backfill(sfq, server, tmp_path)
    code, _, err = sfq("repair", queue_id)
    assert code == cli_api.REFUSED and "409" in err and "once it has ended" in err
    for job in jobs:
        if job["period"] in ("2024_04", "2024_05", "2024_06"):
            _report(server, queue_id, job["id"], 1000)
    code, out, err = sfq("repair", queue_id)
    assert code == cli_api.OK, err
    lines = out.splitlines()
    assert lines[0] == f"Queue repairing: {queue_id} (2 job(s) relaunched)"
    assert len(lines) == 3 and all(line.startswith("  sf-") and line.endswith("-r1") for line in lines[1:])
    code, _, err = sfq("--json", "repair", queue_id)
    assert code == cli_api.REFUSED and json.loads(err)["error"].startswith("409: ")
    code, _, err = sfq("repair", "no-such-queue")
    assert code == cli_api.REFUSED and "404" in err
