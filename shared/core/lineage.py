"""Which request of a queue waits for which: inferred from the data, or declared.

Each request reads and writes named datasets. A `loader-producer` writes the
Kafka topic of its (symbol, type, time range) and the `arango-connector` of
the same triple reads that topic and writes the ArangoDB collection of the
same name (see `naming`); other targets name their inputs and outputs in their
parameters (`collection_inputs`, `graph_collection`, `source`, ... and
`collection_output`, `model_output`, ...). A request depends on the request of
the same queue that writes one of its inputs. How long it waits depends on the
kind of work:

- a connector and the loader whose topic it reads are *co-scheduled*:
  launched together, in batch and streaming alike;
- a batch request (historical: `api_*`, `gnn_graph`, `gnn_train`, ...) waits
  until its inputs are `finished`;
- a streaming request (`ws_*`, `realtime_*`, `*_stream`) never finishes on its
  own, so a streaming dependent waits only until its inputs are `running`.

Queue modes: `dag` (the above, plus any explicit `depends_on`), `sequential`
(each request waits for the one before it), `parallel` (no waiting at all).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from shared.core import naming
from shared.core.errors import InvalidInput
from shared.core.models import JobRequest, Need, QueueStart

INPUT_PARAMS = ("collection_inputs", "graph_collection", "source", "collection", "input_collection")
OUTPUT_PARAMS = ("collection_output", "model_output", "output_collection")

# What a dependency must have reached before its dependent may launch.
Until = Literal["launched", "running", "finished"]
LAUNCHED: Until = "launched"
RUNNING: Until = "running"
FINISHED: Until = "finished"




def is_streaming(type_: str) -> bool:
    """A request that never finishes on its own: the legacy `ws` and `realtime` types, and
    `ws_*`, `realtime_*`, `*_stream`. The one rule: the loader type and the lineage both ask it."""
    return type_ in ("ws", "realtime") or type_.startswith(("ws_", "realtime_")) or type_.endswith("_stream")


def _names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def outputs(request: JobRequest, symbol: str, time_range: str) -> set[str]:
    dataset = naming.dataset_name(symbol, request.type, time_range)
    if request.target == "loader-producer":
        return {f"topic:{dataset}"}
    found = {f"collection:{n}" for p in OUTPUT_PARAMS for n in _names(request.params.get(p))}
    if request.target == "arango-connector":
        found.add(f"collection:{dataset}")
    return found


def inputs(request: JobRequest, symbol: str, time_range: str) -> set[str]:
    found = {f"collection:{n}" for p in INPUT_PARAMS for n in _names(request.params.get(p))}
    if request.target == "arango-connector":
        found.add(f"topic:{naming.dataset_name(symbol, request.type, time_range)}")
    return found


def plan(command: QueueStart, *, exists: Callable[[str], bool] | None = None) -> list[list[Need]]:
    """The needs of every request, by index.

    :raises InvalidInput: an input nobody in the queue writes and that does not
        already exist, a `depends_on` naming no request, or a cycle.
    """
    requests = command.requests
    mode = command.mode
    needs: list[list[Need]] = [[] for _ in requests]
    until: Until
    if mode == "parallel":
        return needs
    if mode == "sequential":
        for i in range(1, len(requests)):
            until = RUNNING if is_streaming(requests[i].type) else FINISHED
            needs[i].append(Need(job=i - 1, until=until, reason="sequential mode"))
        return needs
    writers: dict[str, int] = {}
    for i, r in enumerate(requests):
        for name in outputs(r, command.symbol, command.time_range):
            writers.setdefault(name, i)
    problems = []
    for i, r in enumerate(requests):
        for name in sorted(inputs(r, command.symbol, command.time_range)):
            writer = writers.get(name)
            kind, dataset = name.split(":", 1)
            if writer is None:
                if kind == "collection" and not (exists and exists(dataset)):
                    problems.append({"loc": ["requests", i], "msg": f"request {i} ({r.target} {r.type}) reads "
                                     f"collection {dataset!r}, which no request of this queue writes and "
                                     f"which does not exist"})
                continue
            if writer == i:
                continue
            if kind == "topic":
                until = LAUNCHED
            elif is_streaming(r.type):
                until = RUNNING
            else:
                until = FINISHED
            needs[i].append(Need(job=writer, until=until, reason=f"{kind} {dataset}"))
        for ref in r.depends_on or []:
            target = _resolve(requests, ref)
            if target is None or target == i:
                problems.append({"loc": ["requests", i, "depends_on"],
                                 "msg": f"request {i}: depends_on {ref!r} names no other request"})
                continue
            until = RUNNING if is_streaming(r.type) else FINISHED
            needs[i].append(Need(job=target, until=until, reason="depends_on"))
    if problems:
        raise InvalidInput("the queue's requests do not form a pipeline", details=problems)
    cycle = _cycle(needs)
    if cycle:
        names = " -> ".join(f"{i} ({requests[i].target} {requests[i].type})" for i in cycle)
        raise InvalidInput(f"dependency cycle: {names}",
                           details=[{"loc": ["requests", cycle[0]], "msg": f"cycle {names}"}])
    return needs


def _resolve(requests: list[JobRequest], ref: int | str) -> int | None:
    if isinstance(ref, int):
        return ref if 0 <= ref < len(requests) else None
    for i, r in enumerate(requests):
        if r.id == ref:
            return i
    return None


def _cycle(needs: list[list[Need]]) -> list[int] | None:
    """A dependency cycle through blocking needs (co-scheduling is not waiting)."""
    state = [0] * len(needs)  # 0 new, 1 on the stack, 2 done
    stack: list[int] = []

    def visit(i: int) -> list[int] | None:
        state[i] = 1
        stack.append(i)
        for need in needs[i]:
            if state[need.job] == 1:
                return stack[stack.index(need.job):] + [need.job]
            if state[need.job] == 0:
                found = visit(need.job)
                if found:
                    return found
        stack.pop()
        state[i] = 2
        return None

    for i in range(len(needs)):
        if state[i] == 0:
            found = visit(i)
            if found:
                return found
    return None
