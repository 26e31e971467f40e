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

from shared.core import naming, partitions
from shared.core.errors import InvalidInput
from shared.core.fields import is_streaming as is_streaming
from shared.core.models import JobRequest, Need, QueueStart

INPUT_PARAMS = ("collection_inputs", "graph_collection", "source", "collection", "input_collection")
OUTPUT_PARAMS = ("collection_output", "model_output", "output_collection")

# What a dependency must have reached before its dependent may launch.
Until = Literal["launched", "running", "finished"]
LAUNCHED: Until = "launched"
RUNNING: Until = "running"
FINISHED: Until = "finished"




def _names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _dataset(request: JobRequest, symbol: str, time_range: str, period: str | None) -> str:
    """The dataset a loader/connector pair of this request moves: of its period, if partitioned."""
    if period:
        return naming.dataset(symbol, request.type, period)
    return naming.dataset_name(symbol, request.type, time_range)


def outputs(request: JobRequest, symbol: str, time_range: str, period: str | None = None) -> set[str]:
    """What a request writes; `period`: of a partitioned one, the period it loads."""
    dataset = _dataset(request, symbol, time_range, period)
    if request.target == "loader-producer":
        return {f"topic:{dataset}"}
    found = {f"collection:{n}" for p in OUTPUT_PARAMS for n in _names(request.params.get(p))}
    if request.target == "arango-connector":
        found.add(f"collection:{dataset}")
    return found


def inputs(request: JobRequest, symbol: str, time_range: str, period: str | None = None) -> set[str]:
    found = {f"collection:{n}" for p in INPUT_PARAMS for n in _names(request.params.get(p))}
    if request.target == "arango-connector":
        found.add(f"topic:{_dataset(request, symbol, time_range, period)}")
    return found


def _overlaps(a: str, b: str) -> bool:
    return a.split(":")[0] <= b.split(":")[1] and b.split(":")[0] <= a.split(":")[1]


def plan(command: QueueStart, *, exists: Callable[[str], bool] | None = None,
         units: list[partitions.Unit] | None = None) -> list[list[Need]]:
    """The needs of every unit (`partitions.units`: a request, or one period of it), by index.

    :raises InvalidInput: an input nobody in the queue writes and that does not
        already exist, a `depends_on` naming no request, or a cycle.
    """
    if units is None:
        units = partitions.units(command)
    requests = command.requests
    mode = command.mode
    needs: list[list[Need]] = [[] for _ in units]
    until: Until
    if mode == "parallel":
        return needs
    if mode == "sequential":  # each request after the one before it: its units of the same range
        for i, u in enumerate(units):
            until = RUNNING if is_streaming(u.spec.type) else FINISHED
            needs[i].extend(Need(job=j, until=until, reason="sequential mode") for j, v in enumerate(units)
                            if v.request == u.request - 1 and _overlaps(v.time_range, u.time_range))
        return needs
    writers: dict[str, int] = {}
    for i, u in enumerate(units):
        for name in outputs(u.spec, command.symbol, u.time_range, u.period):
            writers.setdefault(name, i)
    problems = []
    missing = 0
    for i, u in enumerate(units):
        r = u.spec
        for name in sorted(inputs(r, command.symbol, u.time_range, u.period)):
            writer = writers.get(name)
            kind, dataset = name.split(":", 1)
            if writer is None:
                if kind == "collection" and not (exists and exists(dataset)):
                    missing += 1
                    if missing <= 10:
                        problems.append({"loc": ["requests", u.request], "msg": f"request {u.request} "
                                         f"({r.target} {r.type}) reads collection {dataset!r}, which no request "
                                         "of this queue writes and which does not exist"})
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
            if target is None or target == u.request:
                problems.append({"loc": ["requests", u.request, "depends_on"],
                                 "msg": f"request {u.request}: depends_on {ref!r} names no other request"})
                continue
            until = RUNNING if is_streaming(r.type) else FINISHED
            # its periods that overlap this one's range (all of them, for an unpartitioned one)
            needs[i].extend(Need(job=j, until=until, reason="depends_on") for j, v in enumerate(units)
                            if v.request == target and _overlaps(v.time_range, u.time_range))
    if missing > 10:
        problems.append({"loc": ["requests"], "msg": f"and {missing - 10} more such inputs"})
    problems = [p for n, p in enumerate(problems) if p not in problems[:n]]  # one per request, not per period
    if problems:
        raise InvalidInput("the queue's requests do not form a pipeline", details=problems)
    cycle = _cycle(needs)
    if cycle:
        names = " -> ".join(f"{units[i].request} ({units[i].spec.target} {units[i].spec.type})" for i in cycle)
        raise InvalidInput(f"dependency cycle: {names}",
                           details=[{"loc": ["requests", units[cycle[0]].request], "msg": f"cycle {names}"}])
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
