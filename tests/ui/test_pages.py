"""The pages' plumbing, in-process: /docs and /ui with their assets, the OpenAPI examples, QM_PUBLIC_URLS."""

from __future__ import annotations

import json
import re

import pytest

from shared.api import openapi, public, ui
from shared.core.models import QueueStart
from shared.examples import load
from tests.servers import FunctionServer, base_env

EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?!/|#|data:)|https?://|//cdn|@import""", re.I)


@pytest.mark.parametrize("function", ["status", "all"])
def test_pages_and_every_asset_they_load_are_served_locally(client, function):
    app = client(function)
    for page in ("/docs", "/ui"):
        r = app.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert not EXTERNAL.search(r.text), f"{page} refers to another origin"
        assets = re.findall(r'(?:src|href)="(/[^"]+)"', r.text)
        assert len(assets) >= 2
        for asset in assets:
            loaded = app.get(asset)
            assert loaded.status_code == 200, asset
            if asset.endswith(".js"):
                assert loaded.headers["content-type"].startswith("text/javascript")
    assert app.head("/docs").status_code == 200


def test_swagger_ui_comes_from_the_installed_package_and_renders_openapi_31(client):
    major = int(ui.swagger_version().split(".")[0])
    assert major >= 5, "Swagger UI before 5 cannot render an OpenAPI 3.1 document"
    page = client("status").get("/docs").text
    assert f'data-swagger-version="{ui.swagger_version()}"' in page
    bundle = client("status").get("/docs/static/swagger-ui-bundle.js")
    assert len(bundle.content) > 500_000 and bundle.headers["cache-control"].startswith("public")


def test_our_own_assets_have_no_external_references(client):
    for name in sorted(ui.OWN_FILES):
        text = client("status").get(f"/ui/static/{name}").text
        assert not re.search(r"https?://|//cdn|@import", text), name


def test_unknown_assets_are_404(client):
    app = client("status")
    for path in ("/docs/static/index.j2", "/docs/static/swagger-ui-bundle.js.map", "/ui/static/index.html",
                 "/ui/static/..%2F__init__.py", "/docs/static/%2e%2e"):
        assert app.get(path).status_code == 404, path


def test_start_and_plan_carry_the_seed_examples():
    doc = openapi.document(urls={})
    for path in ("/queues/start", "/queues/plan"):
        examples = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"]
        assert list(examples) == ["historical", "realtime", "legacy"]
        for name, example in examples.items():
            assert example["value"] == load(name)
            QueueStart.parse(example["value"])  # each one is a valid start
    assert "summary" in doc["paths"]["/queues/{queue_id}/stop"]["post"]
    assert "text/event-stream" in doc["paths"]["/queues/{queue_id}/watch"]["get"]["responses"]["200"]["content"]


def test_same_origin_by_default():
    doc = openapi.document(urls={})
    assert doc["servers"][0]["url"] == "/"
    assert all("servers" not in op for item in doc["paths"].values() for op in item.values())
    assert "QM_PUBLIC_URLS" in doc["info"]["description"]


def test_public_urls_point_each_operation_at_its_function():
    urls = public.parse('{"start": "https://start.sf.example/", "stop": "https://stop.sf.example",'
                        ' "status": "https://status.sf.example"}')
    doc = openapi.document(urls=urls)
    served = {(path, method): op["servers"][0]["url"] for path, item in doc["paths"].items()
              for method, op in item.items() if "servers" in op}
    assert served[("/queues/start", "post")] == "https://start.sf.example"
    assert served[("/queues/plan", "post")] == "https://start.sf.example"
    assert served[("/queues/{queue_id}/retry", "post")] == "https://start.sf.example"
    assert served[("/queues/{queue_id}/stop", "post")] == "https://stop.sf.example"
    assert served[("/queues/{queue_id}/watch", "get")] == "https://status.sf.example"
    assert served[("/telemetry", "post")] == "/"  # not configured: this origin, never another function's URL
    assert doc["servers"][0]["url"] == "https://status.sf.example"
    assert "start → https://start.sf.example" in doc["info"]["description"]


@pytest.mark.parametrize("raw", ['["https://x"]', '{"starter": "https://x"}', '{"start": "ftp://x"}',
                                 '{"start": "https://x?y=1"}', '{"start": 3}', "{nope"])
def test_bad_public_urls_are_refused(raw):
    with pytest.raises(ValueError, match="QM_PUBLIC_URLS"):
        public.parse(raw)


def test_a_real_status_function_reads_qm_public_urls_once_at_start(tmp_path):
    urls = {"start": "https://start.sf.example", "stop": "https://stop.sf.example"}
    env = base_env(tmp_path / "state", QM_PUBLIC_URLS=json.dumps(urls))
    with FunctionServer("status", env, tmp_path) as status:
        code, doc = status.call("GET", "/openapi.json")
        assert code == 200
        assert doc["paths"]["/queues/start"]["post"]["servers"][0]["url"] == urls["start"]
        code, config = status.call("GET", "/ui/config.json")
        assert config == {"start": urls["start"], "stop": urls["stop"], "telemetry": "", "status": ""}
    bad = FunctionServer("status", base_env(tmp_path / "state", QM_PUBLIC_URLS="{oops"), tmp_path)
    with pytest.raises(RuntimeError, match="QM_PUBLIC_URLS must be a JSON object"):
        bad.start(timeout=15)
    bad.stop()
