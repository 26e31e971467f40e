"""`sfq` with tokens, and listing page after page by the server's cursor."""

from __future__ import annotations

import io
import json

from shared import cli
from tests.servers import ROOT, FunctionServer, base_env

EXAMPLES = ROOT / "shared" / "examples"


def test_tokens_from_the_environment_get_their_role(tmp_path, capsys, monkeypatch):
    env = base_env(tmp_path / "state", QM_READ_TOKENS="cli-read", QM_OPERATE_TOKENS="cli-operate")
    with FunctionServer("all", env, tmp_path) as srv:
        def run(token: str | None, *argv: str) -> tuple[int, str]:
            if token is None:
                monkeypatch.delenv("SFQ_TOKEN", raising=False)
            else:
                monkeypatch.setenv("SFQ_TOKEN", token)
            capsys.readouterr()
            code = cli.main(["--url", srv.url, *argv], out=io.StringIO())
            return code, capsys.readouterr().err

        code, err = run(None, "ls")
        assert code != 0 and "bearer token is required" in err
        code, _ = run("cli-operate", "start", "-f", str(EXAMPLES / "historical.json"))
        assert code == 0
        assert run("cli-read", "ls")[0] == 0
        listed = json.loads(cli_json(srv.url, "cli-read"))
        queue_id = (listed["data"] if isinstance(listed, dict) else listed)[0]["id"]
        code, err = run("cli-read", "stop", queue_id)
        assert code != 0 and "operate token" in err
        assert run("cli-operate", "stop", queue_id)[0] in (0, 2)


def cli_json(url: str, token: str) -> str:
    out = io.StringIO()
    assert cli.main(["--url", url, "--token", token, "--json", "ls"], out=out) == 0
    return out.getvalue()


def test_ls_pages_by_the_cursor(sfq, server, monkeypatch):
    legacy = json.loads((EXAMPLES / "legacy.json").read_text())
    for symbol in ("AAA", "BBB", "CCC", "DDD", "EEE"):
        code, body = server.call("POST", "/queues/start", {**legacy, "symbol": symbol})
        assert code == 200, body
    monkeypatch.setattr(cli, "PAGE", 2)
    code, out, _ = sfq("--json", "ls", "--limit", "4")
    assert code == 0
    listed = json.loads(out)
    rows = listed["data"] if isinstance(listed, dict) else listed
    assert [q["symbol"] for q in rows] == ["EEE", "DDD", "CCC", "BBB"]
    code, out, _ = sfq("ls", "--limit", "9")
    assert code == 0 and out.strip().endswith("5 of 5 queue(s)")
