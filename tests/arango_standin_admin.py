"""Administrative half of the ArangoDB stand-in (see tests/arango_standin.py).

Databases (/_api/database), users (/_api/user, one password per user, access to every
database), JWT superuser tokens (HS256, as arangod's AuthenticationFeature checks them when a
JWT secret is set), and the bare graph definitions python-arango's own suite creates in its
setup (/_api/gharial: create/read/delete, vertex collections, edge definitions). Graph
traversal, permissions and the asynchronous job API are not modelled; the job and task lists
answer empty, as on a fresh server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

try:
    from .arango_standin_aql import ApiError
except ImportError:  # imported as a top-level module
    from arango_standin_aql import ApiError  # type: ignore[no-redef]


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def jwt_valid(token: str, secret: str | None) -> bool:
    """An HS256 token signed with the server's secret, not expired."""
    if not secret:
        return False
    try:
        head, payload, sig = token.split(".")
        header, claims = json.loads(_b64(head)), json.loads(_b64(payload))
        mac = hmac.new(secret.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    except ValueError:
        return False
    if header.get("alg") != "HS256" or not hmac.compare_digest(mac, _b64(sig)):
        return False
    exp = claims.get("exp")
    return claims.get("iss") == "arangodb" and (exp is None or exp > time.time())


def _ok(code: int, **fields: Any) -> tuple[int, dict, dict]:
    return code, {"error": False, "code": code, **fields}, {}


def dispatch(standin: Any, db: Any, method: str, head: list, rest: list, query: dict,
             body: Any) -> tuple[int, Any, dict] | None:
    """Answer an administrative request, or None when the path is not one of them."""
    data = body if isinstance(body, dict) else {}
    if head == ["_api", "database"]:
        return _databases(standin, db, method, rest, data)
    if head == ["_api", "user"]:
        return _users(standin, method, rest, data)
    if head == ["_api", "gharial"]:
        return _graphs(standin, db, method, rest, data)
    if head == ["_api", "job"] and method == "DELETE":
        return 200, [], {}
    if head == ["_api", "tasks"] and method == "GET" and not rest:
        return 200, [], {}
    return None


def _databases(standin: Any, db: Any, method: str, rest: list, data: dict):
    if method == "GET" and rest in (["current"], ["user"]):
        if rest == ["user"]:
            grants = standin.grants.get(standin.user, standin.dbs)
            return _ok(200, result=sorted(d for d in standin.dbs if d in grants))
        return _ok(200, result={"name": db.name, "id": str(id(db) % 10**6),
                                "path": "", "isSystem": db.name == "_system",
                                "sharding": "", "replicationFactor": 1, "writeConcern": 1})
    if db.name != "_system":
        raise ApiError(403, 1230, "operation only allowed in system database")
    if method == "GET" and not rest:
        return _ok(200, result=sorted(standin.dbs))
    if method == "POST" and not rest:
        name = data.get("name")
        if not isinstance(name, str) or not name or len(name) > 128 or "/" in name \
                or name[0] in "_0123456789":
            raise ApiError(400, 1229, "database name invalid")
        if name in standin.dbs:
            raise ApiError(409, 1207, "duplicate database name")
        users = data.get("users") or []
        for user in users if isinstance(users, list) else []:
            if isinstance(user, dict) and isinstance(user.get("username"), str):
                standin.users.setdefault(user["username"], str(user.get("passwd") or ""))
                standin.grants.setdefault(user["username"], set()).add(name)
        standin.add_database(name)
        return _ok(201, result=True)
    if method == "DELETE" and len(rest) == 1:
        if rest[0] == "_system":
            raise ApiError(403, 1230, "operation only allowed in system database")
        if standin.dbs.pop(rest[0], None) is None:
            raise ApiError(404, 1228, "database not found")
        return _ok(200, result=True)
    raise ApiError(405, 405, "method not supported")


def _user_record(name: str) -> dict:
    return {"user": name, "active": True, "extra": {}}


def _users(standin: Any, method: str, rest: list, data: dict):
    if method == "GET" and not rest:
        return _ok(200, result=[_user_record(u) for u in sorted(standin.users)])
    if method == "GET" and len(rest) == 1:
        if rest[0] not in standin.users:
            raise ApiError(404, 1703, "user not found")
        return _ok(200, **_user_record(rest[0]))
    if method == "POST" and not rest:
        name = data.get("user")
        if not isinstance(name, str) or not name:
            raise ApiError(400, 1700, "invalid user name")
        if name in standin.users:
            raise ApiError(409, 1702, "duplicate user")
        standin.users[name] = str(data.get("passwd") or "")
        standin.grants[name] = set()
        return _ok(201, **_user_record(name))
    if method == "DELETE" and len(rest) == 1:
        if standin.users.pop(rest[0], None) is None:
            raise ApiError(404, 1703, "user not found")
        standin.grants.pop(rest[0], None)
        return _ok(202)
    raise ApiError(405, 405, "method not supported")


def _graphs(standin: Any, db: Any, method: str, rest: list, data: dict):
    graphs: dict = db.__dict__.setdefault("graphs", {})
    if method == "GET" and not rest:
        return _ok(200, graphs=list(graphs.values()))
    if method == "POST" and not rest:
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, 1923, "graph name invalid")
        if name in graphs:
            raise ApiError(409, 1925, "graph already exists")
        graph = {"_key": name, "_id": f"_graphs/{name}", "_rev": standin.new_rev(),
                 "name": name, "edgeDefinitions": [], "orphanCollections": [],
                 "numberOfShards": 1, "replicationFactor": 1, "isSmart": False}
        for edef in data.get("edgeDefinitions") or []:
            _add_edge_definition(standin, db, graph, edef)
        for col in data.get("orphanCollections") or []:
            standin.ensure_collection(db, col, 2)
            graph["orphanCollections"].append(col)
        graphs[name] = graph
        return _ok(202, graph=graph)
    found = graphs.get(rest[0]) if rest else None
    if found is None:
        raise ApiError(404, 1924, "graph not found")
    if method == "GET" and len(rest) == 1:
        return _ok(200, graph=found)
    if method == "DELETE" and len(rest) == 1:
        del graphs[rest[0]]
        return _ok(202, removed=True)
    if method == "POST" and rest[1:] == ["vertex"]:
        col = data.get("collection")
        standin.ensure_collection(db, col, 2)
        if col not in found["orphanCollections"]:
            found["orphanCollections"].append(col)
        return _ok(202, graph=found)
    if method == "POST" and rest[1:] == ["edge"]:
        _add_edge_definition(standin, db, found, data)
        return _ok(202, graph=found)
    raise ApiError(501, 9, "not implemented (stand-in keeps graph definitions only)")


def _add_edge_definition(standin: Any, db: Any, graph: dict, edef: Any) -> None:
    if not isinstance(edef, dict) or not isinstance(edef.get("collection"), str):
        raise ApiError(400, 1923, "edge definition invalid")
    standin.ensure_collection(db, edef["collection"], 3)
    vertices = [*(edef.get("from") or []), *(edef.get("to") or [])]
    for col in vertices:
        standin.ensure_collection(db, col, 2)
    graph["orphanCollections"] = [c for c in graph["orphanCollections"] if c not in vertices]
    graph["edgeDefinitions"].append({"collection": edef["collection"],
                                     "from": list(edef.get("from") or []),
                                     "to": list(edef.get("to") or [])})
