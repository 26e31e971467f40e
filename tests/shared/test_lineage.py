import pytest

from shared import lineage
from shared.errors import InvalidInput
from shared.models import QueueStart


def _needs(payload):
    return [[(n.job, n.until) for n in needs] for needs in lineage.plan(QueueStart.parse(payload))]


def test_historical_example_infers_the_pipeline(historical):
    assert _needs(historical) == [
        [], [],
        [(0, "launched")], [(1, "launched")],          # connectors run with their loaders
        [(2, "finished"), (3, "finished")],            # graph-builder reads both collections
        [(4, "finished")],                             # gnn-trainer reads the graph
    ]


def test_realtime_example_waits_only_for_running_inputs(realtime):
    assert _needs(realtime) == [
        [], [],
        [(0, "launched")], [(1, "launched")],
        [(2, "running"), (3, "running")],
        [(4, "running")],
        [(4, "running")],
    ]


def test_modes(historical):
    assert _needs({**historical, "mode": "parallel"}) == [[]] * 6
    seq = _needs({**historical, "mode": "sequential"})
    assert seq[0] == [] and all(n == [(i - 1, "finished")] for i, n in enumerate(seq) if i)


def test_explicit_depends_on_by_index_and_id(historical):
    payload = {**historical, "requests": [dict(r) for r in historical["requests"]]}
    payload["requests"][0]["id"] = "candles"
    payload["requests"][1]["depends_on"] = ["candles"]
    payload["requests"][5]["depends_on"] = [0]
    needs = _needs(payload)
    assert (0, "finished") in needs[1] and (0, "finished") in needs[5]


def test_cycle_is_rejected_naming_the_requests(historical):
    payload = {**historical, "requests": [dict(r) for r in historical["requests"]]}
    payload["requests"][0]["depends_on"] = [5]
    with pytest.raises(InvalidInput, match="cycle") as e:
        lineage.plan(QueueStart.parse(payload))
    assert "loader-producer" in e.value.message and "gnn-trainer" in e.value.message


def test_dangling_input_is_rejected_naming_the_request(historical):
    payload = {**historical, "requests": [dict(r) for r in historical["requests"]]}
    payload["requests"][5]["graph_collection"] = "eth_graph_2024_06"
    with pytest.raises(InvalidInput) as e:
        lineage.plan(QueueStart.parse(payload))
    [detail] = e.value.details
    assert detail["loc"] == ["requests", 5] and "eth_graph_2024_06" in detail["msg"]
    # An input that exists outside the queue is fine.
    lineage.plan(QueueStart.parse(payload), exists=lambda name: name == "eth_graph_2024_06")


def test_unknown_depends_on_is_rejected(historical):
    payload = {**historical, "requests": [dict(r) for r in historical["requests"]]}
    payload["requests"][2]["depends_on"] = ["nobody"]
    with pytest.raises(InvalidInput, match="pipeline"):
        lineage.plan(QueueStart.parse(payload))
