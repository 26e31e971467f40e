"""Evaluation of the AQL subset parsed by tests/arango_standin_aqlx.py."""

from __future__ import annotations

import copy
import functools
import random
import time
from typing import Any

try:
    from .arango_standin_aql import ApiError, aql_cmp, aql_eq
    from .arango_standin_aqlx import WRITES, Parser
except ImportError:  # imported as a top-level module
    from arango_standin_aql import ApiError, aql_cmp, aql_eq  # type: ignore[no-redef]
    from arango_standin_aqlx import WRITES, Parser  # type: ignore[no-redef]


def truthy(v: Any) -> bool:
    """AQL's to-boolean: null, false, 0 and "" are false; arrays and objects are true."""
    return v not in (None, False, 0, "") or isinstance(v, (list, dict))


def _number(v: Any) -> float | int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return float(v) if "." in v else int(v)
        except ValueError:
            return 0
    return 0


def _length(v: Any) -> int:
    return len(v) if isinstance(v, (list, dict, str)) else (0 if v is None else 1)


FUNCTIONS = {
    "LENGTH": lambda a: _length(a[0]),
    "COUNT": lambda a: _length(a[0]),
    "RAND": lambda a: random.random(),
    "CONCAT": lambda a: "".join("" if x is None else x if isinstance(x, str) else str(x)
                                for x in a),
    "MERGE": lambda a: functools.reduce(lambda x, y: {**x, **y}, a, {}),
    "TO_STRING": lambda a: "" if a[0] is None else str(a[0]),
    "IS_NULL": lambda a: a[0] is None,
    "HAS": lambda a: isinstance(a[0], dict) and a[1] in a[0],
}


class Run:
    def __init__(self, db: Any, bind: dict):
        self.db, self.bind = db, bind
        self.stats = {"writesExecuted": 0, "writesIgnored": 0, "scannedFull": 0,
                      "scannedIndex": 0, "filtered": 0, "httpRequests": 0}
        self.full_count: int | None = None

    def collection(self, name: Any) -> Any:
        col = self.db.cols.get(name) if isinstance(name, str) else None
        if col is None:
            raise ApiError(404, 1203, f"AQL: collection or view not found: {name} (while parsing)")
        return col

    def value(self, node: Any, env: dict) -> Any:
        op = node[0]
        if op == "lit":
            return node[1]
        if op == "bind":
            return copy.deepcopy(self.bind[node[1]])
        if op == "var":
            if node[1] in env:
                return env[node[1]]
            return [copy.deepcopy(d) for d in self.collection(node[1]).docs.values()]
        if op == "get":
            obj, key = self.value(node[1], env), self.value(node[2], env)
            if isinstance(obj, dict) and isinstance(key, str):
                return obj.get(key)
            if isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
                return obj[key]
            return None
        if op == "cmp":
            a, b = self.value(node[2], env), self.value(node[3], env)
            if node[1] == "IN":
                return isinstance(b, list) and any(aql_eq(a, x) for x in b)
            c = aql_cmp(a, b)
            return {"==": c == 0, "!=": c != 0, "<": c < 0, "<=": c <= 0, ">": c > 0,
                    ">=": c >= 0}[node[1]]
        if op == "if":
            return self.value(node[2] if truthy(self.value(node[1], env)) else node[3], env)
        if op == "and":
            a = self.value(node[1], env)
            return self.value(node[2], env) if truthy(a) else a
        if op == "or":
            a = self.value(node[1], env)
            return a if truthy(a) else self.value(node[2], env)
        if op == "not":
            return not truthy(self.value(node[1], env))
        if op == "arith":
            a, b = _number(self.value(node[2], env)), _number(self.value(node[3], env))
            if node[1] in "/%" and b == 0:
                return None
            return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                    "/": lambda: a / b, "%": lambda: a % b}[node[1]]()
        if op == "array":
            return [self.value(x, env) for x in node[1]]
        if op == "object":
            return {k: self.value(v, env) for k, v in node[1]}
        if op == "call":
            if node[1] not in FUNCTIONS:
                raise ApiError(400, 1540, f"AQL: usage of unknown function '{node[1]}()' "
                               "(while parsing)")
            return FUNCTIONS[node[1]]([self.value(x, env) for x in node[2]])
        raise ApiError(400, 1501, "AQL: syntax error (while parsing)")

    def source(self, node: Any, env: dict) -> list:
        if node[0] == "bind" and node[1].startswith("@"):
            docs = list(self.collection(self.bind[node[1]]).docs.values())
        elif node[0] == "var" and node[1] not in env:
            docs = list(self.collection(node[1]).docs.values())
        else:
            value = self.value(node, env)
            if not isinstance(value, list):
                raise ApiError(400, 1563, "AQL: collection or array expected as operand to FOR "
                               "loop (while executing)")
            return value
        self.stats["scannedFull"] += len(docs)
        return [copy.deepcopy(d) for d in docs]

    def write(self, op: tuple, env: dict) -> dict:
        word, what, with_, col_node, options_node = op
        name = self.bind[col_node[1]] if col_node[0] == "bind" else col_node[1]
        col = self.collection(name)
        options = self.value(options_node, env) or {}
        query = {k: str(v).lower() for k, v in options.items()
                 if k in ("keepNull", "mergeObjects", "overwriteMode", "waitForSync",
                          "ignoreRevs", "overwrite")}
        query.update(returnOld="true", returnNew="true")
        doc = self.value(what, env)
        body = self.value(with_, env) if with_ is not None else doc
        key = doc if isinstance(doc, str) else doc.get("_key") if isinstance(doc, dict) else None
        standin = self.db.standin
        try:
            if word == "INSERT":
                _, out, _ = standin._documents(self.db, "POST", [col.name], query, {}, body)
            else:
                if not isinstance(key, str):
                    raise ApiError(400, 1205, "AQL: illegal document identifier (while executing)")
                method = {"UPDATE": "PATCH", "REPLACE": "PUT", "REMOVE": "DELETE"}[word]
                _, out, _ = standin._documents(self.db, method, [col.name, key], query, {},
                                               None if word == "REMOVE" else body)
        except ApiError as e:
            if options.get("ignoreErrors") is True:
                self.stats["writesIgnored"] += 1
                return env
            raise ApiError(e.code, e.num, f"AQL: {e.message} (while executing)") from None
        self.stats["writesExecuted"] += 1
        return {**env, "OLD": out.get("old"), "NEW": out.get("new")}

    def order(self, keys: list[tuple[Any, bool]]) -> Any:
        def compare(x: dict, y: dict) -> int:
            for expr, desc in keys:
                c = aql_cmp(self.value(expr, x), self.value(expr, y))
                if c:
                    return -c if desc else c
            return 0
        return compare

    def execute(self, ops: list[tuple]) -> list:
        rows: list[dict] = [{}]
        for op in ops:
            kind = op[0]
            if kind == "FOR":
                rows = [{**env, op[1]: v} for env in rows for v in self.source(op[2], env)]
            elif kind == "FILTER":
                kept = [env for env in rows if truthy(self.value(op[1], env))]
                self.stats["filtered"] += len(rows) - len(kept)
                rows = kept
            elif kind == "LET":
                rows = [{**env, op[1]: self.value(op[2], env)} for env in rows]
            elif kind == "SORT":
                rows = sorted(rows, key=functools.cmp_to_key(self.order(op[1])))
            elif kind == "LIMIT":
                offset, count = self.value(op[1], {}), self.value(op[2], {})
                count = len(rows) if count is None else count  # LIMIT o, null: no limit
                if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
                       for v in (offset, count)):
                    raise ApiError(400, 1504, "AQL: LIMIT value is not a number or out of "
                                   "range (while instantiating plan)")
                self.full_count = len(rows)
                rows = rows[int(offset):int(offset) + int(count)]
            elif kind in WRITES:
                rows = [self.write(op, env) for env in rows]
            else:  # RETURN
                out = [self.value(op[1], env) for env in rows]
                if op[2]:
                    out = functools.reduce(lambda acc, v: acc if any(aql_eq(v, a) for a in acc)
                                           else [*acc, v], out, [])
                return out
        return []


def run(db: Any, query: str, bind: dict, full_count: bool) -> tuple[list, dict]:
    started = time.perf_counter()
    parser = Parser(query)
    declared = {v[1:] for k, v in parser.toks if k == "bind"}
    ops = parser.statements()
    for name in sorted(declared):
        if name not in bind:
            raise ApiError(400, 1551, "AQL: no value specified for declared bind parameter "
                           f"'{name}' (while parsing)")
    for name in bind:
        if name not in declared:
            raise ApiError(400, 1552, f"AQL: bind parameter '{name}' was not declared in the "
                           "query (while parsing)")
    executor = Run(db, bind)
    rows = executor.execute(ops)
    stats: dict[str, Any] = dict(executor.stats)
    if full_count:
        stats["fullCount"] = executor.full_count if executor.full_count is not None else len(rows)
    stats.update(executionTime=time.perf_counter() - started, peakMemoryUsage=0)
    return copy.deepcopy(rows), stats
