import subprocess
import sys

import pytest
from functions_framework.aio import create_asgi_app
from starlette.testclient import TestClient

from tests.conftest import ROOT


@pytest.mark.parametrize("name, path, code", [("status", "/queues", 200), ("telemetry", "/queues", 404),
                                              ("start", "/health/live", 200)])
def test_qm_function_selects_the_function(monkeypatch, name, path, code):
    monkeypatch.setenv("QM_FUNCTION", name)
    app = create_asgi_app(target="handle", source=str(ROOT / "functions" / "main.py"), signature_type="http")
    assert TestClient(app).get(path).status_code == code


def test_unknown_function_name_fails_at_start():
    proc = subprocess.run([sys.executable, "-c", "import functions.main"], capture_output=True, text=True,
                          env={"QM_FUNCTION": "deploy", "PATH": ""}, cwd=ROOT)
    assert proc.returncode != 0 and "QM_FUNCTION must be one of" in proc.stderr
