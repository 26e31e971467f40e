import pytest

from shared.core import lineage
from shared.core.errors import InvalidInput
from shared.core.models import QueueStart


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


@pytest.mark.parametrize("type_", ["ws", "realtime", "ws_trades", "realtime_candles_1m", "trades_stream"])
def test_a_stream_type_is_a_stream_loader_and_streaming_alike(type_):
    """Legacy `type: "ws"` was a stream loader but not streaming: a request depending on it
    waited for a `finished` a stream never reaches."""
    from shared.core import lifecycle

    payload = {"symbol": "BTCUSDT", "time_range": "2024-01-01:2024-01-02",
               "requests": [{"target": "loader-producer", "type": type_},
                            {"target": "loader-producer", "type": type_, "depends_on": [0]}]}
    command = QueueStart.parse(payload)
    state = lifecycle.new_queue(queue_id="00000000-0000-0000-0000-000000000001", command=command,
                                now="2024-01-01T00:00:00Z", needs=lineage.plan(command))
    assert [j.loader_type for j in state.jobs] == ["stream", "stream"]
    assert [j.streaming for j in state.jobs] == [True, True]
    assert [(n.job, n.until) for n in state.jobs[1].needs] == [(0, "running")]


@pytest.mark.parametrize("type_", ["api_candles_5m", "wsx", "realtimes", "api"])
def test_other_types_are_batch(type_):
    assert not lineage.is_streaming(type_)
