"""The patterns the OpenAPI document publishes are the validators' own, and they are right:
checked against Python's calendar (date.fromisoformat) and Node's regex engine, which the
document's readers (JSON Schema validators, Swagger UI) use."""

import datetime as dt
import itertools
import json
import shutil
import subprocess

import pytest

from shared.core import fields
from shared.core.models import QueueCreate, QueueStart
from tests.infra.missing import unavailable

YEARS = (1, 4, 99, 100, 400, 1900, 1996, 2000, 2023, 2024, 2100, 2400, 9999)


def _candidates() -> list[str]:
    return [f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in itertools.product(YEARS, range(0, 14), range(0, 33))]


def _real(text: str) -> bool:
    """The extended form the contract names (fromisoformat also reads 20240101), a real date."""
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.replace("-", "").isascii():
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def test_the_date_pattern_takes_exactly_the_real_dates():
    for text in [*_candidates(), "0000-01-01", "2024-1-01", "2024-01-1", "20240101"]:
        assert bool(fields.TIME_RANGE_RE.fullmatch(f"{text}:{text}")) == _real(text), text


@pytest.mark.parametrize("bad", ["٢٠٢٤-٠١-٠١:2024-01-02", "2024-01-01:2024-01-02\n", "2024-01-01",
                                 "2024-02-30:2024-03-01", "20240101:20240102"])
def test_time_ranges_the_pattern_refuses_the_model_refuses(bad):
    assert not fields.TIME_RANGE_RE.fullmatch(bad)
    with pytest.raises(ValueError, match="two real dates"):
        fields.parse_time_range(bad)


def test_a_reversed_range_matches_the_pattern_but_not_the_model():
    assert fields.TIME_RANGE_RE.fullmatch("2024-02-01:2024-01-01")
    with pytest.raises(ValueError, match="after it ends"):
        fields.parse_time_range("2024-02-01:2024-01-01")


@pytest.mark.parametrize("symbol, ok", [("BTCUSDT", True), (" btcusdt ", True), ("B", False), ("BTC\n", False),
                                        ("ßß", False), ("ıi", False), ("BTC-USD", False), ("A" * 21, False)])
def test_symbols_the_pattern_takes_are_the_ones_the_model_takes(symbol, ok):
    assert bool(fields.SYMBOL_RE.fullmatch(symbol)) == ok
    body = {"symbol": symbol, "time_range": "2024-01-01:2024-01-02", "type": "api"}
    if ok:
        assert QueueCreate.model_validate(body).symbol == symbol.strip().upper()
    else:
        with pytest.raises(ValueError, match="2-20 letters or digits"):
            QueueCreate.model_validate(body)


def test_parameter_names_take_no_trailing_newline():
    with pytest.raises(ValueError, match="must match"):
        fields.check_param("interval\n", "5m")


def test_the_published_schema_carries_the_validators_patterns():
    schema = QueueStart.model_json_schema()["properties"]
    assert schema["symbol"]["pattern"] == fields.SYMBOL_RE.pattern
    assert schema["time_range"]["pattern"] == fields.TIME_RANGE_RE.pattern


def test_node_reads_the_patterns_as_python_does():
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        unavailable("Node.js is needed to check the patterns with a JavaScript regex engine")
    samples = [*(f"{c}:{c}" for c in _candidates()), "2024-01-01:2024-01-02\n", " btc ", "BTC\n", "ßß", "BTCUSDT"]
    script = ("const [r1, r2, xs] = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "const a = new RegExp(r1, 'u'), b = new RegExp(r2, 'u');"
              "process.stdout.write(JSON.stringify(xs.map(x => [a.test(x), b.test(x)])));")
    out = subprocess.run([node, "-e", script], input=json.dumps(
        [fields.TIME_RANGE_RE.pattern, fields.SYMBOL_RE.pattern, samples]), capture_output=True, text=True, check=True)
    expected = [[bool(fields.TIME_RANGE_RE.fullmatch(x)), bool(fields.SYMBOL_RE.fullmatch(x))] for x in samples]
    assert json.loads(out.stdout) == expected


def test_the_document_has_only_json_schema_keywords():
    """pydantic's own names for bounds (`ge`, `le`, ...) mean nothing to JSON Schema: a bound
    written that way would be a bound the document does not state."""
    from shared.api import openapi

    found = []

    def walk(node, path):
        if isinstance(node, dict):
            found.extend(f"{path}/{k}" for k in node if k in ("ge", "gt", "le", "lt", "max_length", "min_length"))
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(openapi.document(auth=True), "")
    assert found == []


def test_collection_parameters_take_names_only():
    for value in ([None], 5, [True], ["ok", 1]):
        with pytest.raises(ValueError, match="names are strings"):
            fields.check_param("source", value)
    fields.check_param("source", ["btc_candles_5m_2024_06", "b"])


def test_the_legacy_form_documents_the_queue_options_it_takes():
    import jsonschema_rs

    from shared.api import openapi
    doc = openapi.document()
    body = doc["paths"]["/queues/start"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    valid = jsonschema_rs.validator_for({**body, "components": doc["components"]}).is_valid
    legacy = {"symbol": "BTCUSDT", "type": "api", "time_range": "2024-01-01:2024-01-02"}
    for extra, ok in (({"priority": 9}, True), ({"allow_overlap": True}, True), ({"priority": 11}, False),
                      ({"mode": "dag"}, False)):
        assert valid({**legacy, **extra}) is ok, extra
        if ok:
            QueueStart.parse({**legacy, **extra})
        else:
            with pytest.raises(ValueError):
                QueueStart.parse({**legacy, **extra})
