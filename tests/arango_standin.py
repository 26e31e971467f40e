"""A small ArangoDB HTTP stand-in for the tests (no ArangoDB server can be installed here).

It follows the real REST API (3.11/3.12, as in arangod's CommTask, RestDocumentHandler,
RestVocbaseBaseHandler, RestCursorHandler) for exactly what shared/adapters/state/arango.py and
python-arango send: version, collections, persistent indexes, single-document CRUD with
`_rev`/If-Match semantics, and the project's two AQL queries (tests/arango_standin_aql.py).
With `general_aql=True` it also runs an AQL subset (tests/arango_standin_aqlx.py); databases,
users, JWT and graph definitions are in tests/arango_standin_admin.py, arrays of documents,
imports and index lookups in tests/arango_standin_bulk.py, stream transactions in
tests/arango_standin_trx.py; a collection's documents and its persistent indexes' sorted
structures in tests/arango_standin_docs.py, the list query's walk over them in
tests/arango_standin_list.py.

    with ArangoStandIn(password="pw") as arango:
        ArangoClient(hosts=arango.url).db("streamforge", username="root", password="pw")

Outages: `pause()` answers every request 503 (errorNum 503, startup/maintenance, or errorNum
30 with mode="shutdown") until `resume()`; `stop()` closes the port (and open connections),
`start()` binds the same port again with the data kept.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

try:
    from . import arango_standin_admin as admin
    from . import arango_standin_aql as aql
    from . import arango_standin_bulk as bulk
    from . import arango_standin_docs as docstore
    from . import arango_standin_trx as stream
except ImportError:  # imported as a top-level module
    import arango_standin_admin as admin  # type: ignore[no-redef]
    import arango_standin_aql as aql  # type: ignore[no-redef]
    import arango_standin_bulk as bulk  # type: ignore[no-redef]
    import arango_standin_docs as docstore  # type: ignore[no-redef]
    import arango_standin_trx as stream  # type: ignore[no-redef]

ApiError = aql.ApiError
VERSION = "3.12.4"
KEY_RE = re.compile(r"^[A-Za-z0-9_\-:.@()+,=;$!*'%]{1,254}$")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,255}$")
SYSTEM_NAME_RE = re.compile(r"^_[A-Za-z0-9_-]{1,255}$")
SYSTEM_COLLECTIONS = ("_analyzers", "_appbundles", "_apps", "_aqlfunctions", "_frontend",
                      "_graphs", "_jobs", "_queues")
_HLC = "-_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_MAX = 2**64 - 1


def truthy(v: str | None) -> bool:
    """arangod's StringUtils::boolean for query parameters."""
    return v is not None and v.strip().lower() in ("true", "yes", "on", "y", "1")


def rev_value(v: Any) -> int:
    """RevisionId::fromSlice: 0 = not set, 2**64-1 = unparseable (never matches)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v & _MAX
    if not isinstance(v, str):
        return 0
    r = 0
    if v[:1] in tuple("123456789"):  # numeric revision, parsed unchecked like atoi
        for c in v:
            r = (r * 10 + ord(c) - 48) & _MAX
        return r
    if len(v) > 11:
        return _MAX
    for c in v:
        if c not in _HLC:
            return _MAX
        r = ((r << 6) | _HLC.index(c)) & _MAX
    return r


def _get_path(doc: Any, path: str) -> Any:
    for part in path.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def _strip_nulls(v: Any) -> Any:
    return {k: _strip_nulls(x) for k, x in v.items() if x is not None} if isinstance(v, dict) else v


def _merge(old: dict, patch: dict, keep_null: bool, merge_objects: bool) -> dict:
    out = dict(old)
    for k, v in patch.items():
        if v is None and not keep_null:
            out.pop(k, None)
        elif merge_objects and isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, keep_null, True)
        else:
            out[k] = v if keep_null else _strip_nulls(v)
    return out


class Collection:
    def __init__(self, cid: int, name: str, ctype: int = 2, system: bool = False,
                 user_keys: bool = True, wait_for_sync: bool = False):
        self.id, self.name, self.type, self.system = str(cid), name, ctype, system
        self.user_keys, self.wait_for_sync = user_keys, wait_for_sync
        self.docs: docstore.DocStore = docstore.DocStore()  # keeps the indexes' sorted structures
        self.indexes: list[dict] = [{"fields": ["_key"], "id": f"{name}/0", "name": "primary",
                                     "selectivityEstimate": 1, "sparse": False,
                                     "type": "primary", "unique": True}]

    def summary(self) -> dict:
        return {"id": self.id, "name": self.name, "status": 3, "type": self.type,
                "isSystem": self.system, "globallyUniqueId": f"h1A2B3C4D5E6F/{self.id}"}

    def properties(self) -> dict:
        return {**self.summary(), "statusString": "loaded", "waitForSync": self.wait_for_sync,
                "keyOptions": {"allowUserKeys": self.user_keys, "type": "traditional",
                               "lastValue": 0}, "writeConcern": 1, "cacheEnabled": False,
                "computedValues": None, "syncByRevision": True, "schema": None,
                "usesRevisionsAsDocumentIds": True, "isDisjoint": False, "isSmartChild": False,
                "internalValidatorType": 0}

    def check_unique(self, doc: dict, skip_key: str | None) -> None:
        for idx in self.indexes[1:]:
            values = [_get_path(doc, f) for f in idx["fields"]]
            if not idx["unique"] or (idx["sparse"] and None in values):
                continue
            for key, other in self.docs.items():
                if key != skip_key and all(aql.aql_eq(a, _get_path(other, f))
                                           for a, f in zip(values, idx["fields"], strict=True)):
                    raise ApiError(409, 1210, f"unique constraint violated - in index "
                                   f"{idx['name']} of type persistent over "
                                   f"'{', '.join(idx['fields'])}'; conflicting key: {key}")


class Database:
    def __init__(self, name: str):
        self.name = name
        self.cols: dict[str, Collection] = {}
        self.cursors: dict[str, aql.Cursor] = {}
        self.standin: Any = None


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    standin: ArangoStandIn

    def server_bind(self) -> None:  # skip HTTPServer's reverse DNS lookup (socket.getfqdn)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (or stop() closing its connection) is no error here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # headers and body leave in one write (flushed after each request)
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return "ArangoDB"

    def log_message(self, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.standin._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.standin._track(self.connection, False)

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, payload, headers = self.server.standin.handle(self.command, self.path,
                                                              self.headers, raw)
        data = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any


class ArangoStandIn:
    def __init__(self, username: str = "root", password: str = "",
                 databases: tuple[str, ...] = ("streamforge",), port: int = 0,
                 jwt_secret: str | None = None, general_aql: bool = False):
        self.lock = threading.RLock()
        self.users, self.jwt_secret = {username: password}, jwt_secret
        self.general_aql = general_aql  # the AQL subset of arango_standin_aqlx, not only the store's
        self.grants: dict[str, set[str]] = {}  # users limited to some databases
        self.user: str | None = None
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) answered
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._unavailable: tuple[int, str] | None = None
        self._tick, self._hlc = 10_000, 0
        self.dbs: dict[str, Database] = {}
        for name in ("_system", *databases):
            self.add_database(name)

    def add_database(self, name: str) -> None:
        self.dbs[name] = db = Database(name)
        db.standin = self
        for col in SYSTEM_COLLECTIONS:
            db.cols[col] = Collection(self._next(), col, system=True)

    def ensure_collection(self, db: Database, name: Any, ctype: int) -> None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ApiError(400, 1208, "illegal name")
        if name not in db.cols:
            db.cols[name] = Collection(self._next(), name, ctype)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> ArangoStandIn:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.standin = self
        self._port, self._server = server.server_address[1], server
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"arango-standin:{self._port}", daemon=True)
        thread.start()
        self._thread = thread
        return self

    def stop(self) -> None:
        """Close the port and every open connection; data and port are kept for start()."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self.lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    def pause(self, mode: str = "maintenance") -> None:
        self._unavailable = (30, "shutdown in progress") if mode == "shutdown" else (
            503, "service unavailable due to startup or maintenance mode")

    def resume(self) -> None:
        self._unavailable = None

    def __enter__(self) -> ArangoStandIn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self.lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _next(self) -> int:
        self._tick += 1
        return self._tick

    def new_rev(self) -> str:
        self._hlc = max(self._hlc + 1, (time.time_ns() // 1_000_000) << 20)
        v, out = self._hlc, ""
        while v:
            out, v = _HLC[v & 63] + out, v >> 6
        return out

    # -- request dispatch ------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Any, raw: bytes) -> tuple[int, Any, dict]:
        url = urlsplit(target)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with self.lock:
            try:
                status, payload, extra = self._dispatch(method, path, query, headers, raw)
            except ApiError as e:
                status, payload, extra = e.code, e.body(), e.headers
            self.requests.append((method, path, status))
        return status, payload, extra

    def _authorized(self, header: str | None, dbname: str) -> bool | None:
        """True, False (unknown credentials), None (a user without access to that database)."""
        if header and header.lower().startswith("bearer "):
            return admin.jwt_valid(header[7:].strip(), self.jwt_secret)
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except ValueError:
            return False
        if user not in self.users or self.users[user] != password:
            return False
        self.user = user
        return None if dbname not in self.grants.get(user, {dbname}) else True

    def _dispatch(self, method: str, path: str, query: dict, headers: Any,
                  raw: bytes) -> tuple[int, Any, dict]:
        if self._unavailable:  # CommTask::prepareExecution step 1/2
            raise ApiError(503, *self._unavailable)
        dbname: str = "_system"
        if path.startswith("/_db/"):
            name, _, tail = path[5:].partition("/")
            dbname, path = unquote(name), "/" + tail
        self.user = None  # the request's user when not a superuser token
        authorized = self._authorized(headers.get("Authorization"), dbname)
        db = self.dbs.get(dbname)
        if authorized is None:  # a user without rights on the database (existing or not)
            raise ApiError(401, 11, "not authorized to execute this request")
        if db is None:  # an unauthenticated client must not learn which databases exist
            raise (ApiError(404, 1228, "database not found") if authorized
                   else ApiError(401, 11, "forbidden"))
        if not authorized:
            raise ApiError(401, 11, "not authorized to execute this request",
                           headers={"WWW-Authenticate": 'Basic, realm="ArangoDB"'})
        segs = [unquote(s) for s in path.strip("/").split("/")]
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError as e:
            raise ApiError(400, 600, f"VPackError error: {e}") from None
        head, rest = segs[:2], segs[2:]
        if head == ["_api", "transaction"]:
            return stream.transactions(self, db, method, rest, body)
        if headers.get("x-arango-trx-id"):
            db = stream.view_for(db, headers.get("x-arango-trx-id"), method, head, rest, query)
        if head == ["_api", "version"] and not rest and method == "GET":
            out: dict[str, Any] = {"server": "arango", "version": VERSION, "license": "community"}
            if truthy(query.get("details")):
                out["details"] = {"mode": "server", "role": "SINGLE", "architecture": "64bit",
                                  "engine": "rocksdb", "server-version": VERSION}
            return 200, out, {}
        if head == ["_api", "collection"]:
            return self._collections(db, method, rest, query, body)
        if head == ["_api", "index"]:
            return self._indexes(db, method, rest, query, body)
        if head == ["_api", "document"]:
            return self._documents(db, method, rest, query, headers, body)
        if head == ["_api", "cursor"]:
            return (*aql.cursor_request(db, method, rest, body, str(self._next())), {})
        if head == ["_api", "import"] and not rest and method == "POST":
            return bulk.import_documents(self, db, query, raw)
        answer = admin.dispatch(self, db, method, head, rest, query, body)
        if answer is not None:
            return answer
        raise ApiError(404, 404, f"unknown path '{path}'")

    def _collection(self, db: Database, name: str | None, message: str) -> Collection:
        col = db.cols.get(name or "") or next((c for c in db.cols.values() if c.id == name), None)
        if col is None:
            raise ApiError(404, 1203, message)
        return col

    # -- /_api/collection ------------------------------------------------------------------
    def _collections(self, db: Database, method: str, rest: list, query: dict, body: Any):
        if not rest and method == "GET":
            cols = [c.summary() for c in db.cols.values()
                    if not (c.system and truthy(query.get("excludeSystem")))]
            return 200, {"error": False, "code": 200, "result": cols}, {}
        if not rest and method == "POST":
            data: dict = body if isinstance(body, dict) else {}
            name, system = data.get("name"), data.get("isSystem") is True
            if not isinstance(name, str) or not (NAME_RE.match(name)
                                                 or (system and SYSTEM_NAME_RE.match(name))):
                raise ApiError(400, 1208, "illegal name")
            if name in db.cols:
                raise ApiError(409, 1207, "duplicate name")
            if data.get("type", 2) not in (2, 3):
                raise ApiError(400, 1218, "collection type invalid")
            keys: dict = data.get("keyOptions") or {}
            keys = keys if isinstance(keys, dict) else {}
            db.cols[name] = col = Collection(self._next(), name, data.get("type", 2), system,
                                             keys.get("allowUserKeys", True) is not False,
                                             data.get("waitForSync") is True)
            return 200, {"error": False, "code": 200, **col.properties()}, {}
        col = self._collection(db, rest[0] if rest else None, "collection or view not found")
        if method == "GET" and len(rest) == 1:
            return 200, {"error": False, "code": 200, **col.summary()}, {}
        if method == "GET" and rest[1:] == ["properties"]:
            return 200, {"error": False, "code": 200, **col.properties()}, {}
        if method == "GET" and rest[1:] == ["count"]:
            return 200, {"error": False, "code": 200, **col.properties(), "count": len(col.docs)}, {}
        if method == "PUT" and rest[1:] == ["truncate"]:
            col.docs.clear()
            return 200, {"error": False, "code": 200, **col.summary()}, {}
        if method == "DELETE" and len(rest) == 1:
            if col.system and not truthy(query.get("isSystem")):
                raise ApiError(403, 11, "forbidden")
            del db.cols[col.name]
            return 200, {"error": False, "code": 200, "id": col.id}, {}
        raise ApiError(404, 404, f"unknown path '/_api/collection/{'/'.join(rest)}'")

    # -- /_api/index -----------------------------------------------------------------------
    def _indexes(self, db: Database, method: str, rest: list, query: dict, body: Any):
        if rest:
            return bulk.index_by_id(self, db, method, rest)
        col = self._collection(db, query.get("collection"), "collection or view not found")
        if method == "GET":
            return 200, {"error": False, "code": 200, "indexes": copy.deepcopy(col.indexes),
                         "identifiers": {i["id"]: copy.deepcopy(i) for i in col.indexes}}, {}
        if method != "POST":
            raise ApiError(405, 405, "method not supported")
        data = body if isinstance(body, dict) else {}
        itype = data.get("type")
        if itype not in ("persistent", "hash", "skiplist", "geo", "fulltext"):
            raise ApiError(501, 9, "not implemented (stand-in: persistent, geo, fulltext indexes)")
        itype = "persistent" if itype in ("hash", "skiplist") else itype
        fields = data.get("fields")
        if (not isinstance(fields, list) or not fields
                or not all(isinstance(f, str) and f for f in fields)):
            raise ApiError(400, 10, "invalid index description: 'fields' must be a non-empty "
                           "array of attribute paths")
        unique = data.get("unique") is True
        sparse = itype in ("geo", "fulltext") or data.get("sparse") is True
        for idx in col.indexes[1:]:
            if (idx["type"], idx["fields"], idx["unique"], idx["sparse"]) == (itype, fields, unique,
                                                                              sparse):
                return 200, {**copy.deepcopy(idx), "isNewlyCreated": False,
                             "error": False, "code": 200}, {}
        tick = self._next()
        idx = {"cacheEnabled": data.get("cacheEnabled") is True, "deduplicate": True,
               "estimates": True, "fields": list(fields), "id": f"{col.name}/{tick}",
               "name": data.get("name") or f"idx_{tick}", "selectivityEstimate": 1,
               "sparse": sparse, "type": itype, "unique": unique}
        col.indexes.append(idx)
        try:
            for key, doc in col.docs.items():
                col.check_unique(doc, key)
        except ApiError:
            col.indexes.pop()
            raise
        col.docs.sync(col.indexes)
        return 201, {**copy.deepcopy(idx), "isNewlyCreated": True, "error": False, "code": 201}, {}

    # -- /_api/document --------------------------------------------------------------------
    def _documents(self, db: Database, method: str, rest: list, query: dict, headers: Any,
                   body: Any):
        single = len(rest) == 2 if method != "POST" else len(rest) <= 1
        if not single or (method == "POST" and isinstance(body, list)):
            if len(rest) > 2 or (method == "POST" and len(rest) > 1):
                raise ApiError(400, 601, "superfluous suffix, expecting /_api/document/<collection>"
                               "/<key>")
            if method in ("GET", "HEAD"):
                raise ApiError(404, 1203, "expecting GET /_api/document/<collection>/<key>")
            return bulk.many(self, db, method, rest, query, body)
        cname = rest[0] if rest else query.get("collection")
        if not cname:
            raise ApiError(400, 1204, "'collection' is missing, expecting /_api/document/<collection>")
        col = self._collection(db, cname, f"collection or view not found: {cname}")
        if method == "POST":
            return self._insert(db, col, query, body)
        key = rest[1]
        if_match = self._header_rev(headers, "If-Match")
        current = col.docs.get(key)
        if method in ("GET", "HEAD"):
            if current is None:
                raise ApiError(404, 1202, "document not found")
            cur_rev = rev_value(current["_rev"])
            if if_match and if_match != cur_rev:
                raise self._conflict(current, "conflict")
            if self._header_rev(headers, "If-None-Match") == cur_rev:
                return 304, None, {"Etag": f'"{current["_rev"]}"'}
            return 200, copy.deepcopy(current), {"Etag": f'"{current["_rev"]}"'}
        if method not in ("PUT", "PATCH", "DELETE"):
            raise ApiError(501, 9, "'ILLEGAL /_api/document' not implemented")
        if method != "DELETE" and not isinstance(body, dict):
            raise ApiError(400, 1227, "invalid document type")
        expected = if_match
        if not expected and method != "DELETE" and not truthy(query.get("ignoreRevs", "true")):
            expected = rev_value(body.get("_rev"))
        if current is None:
            raise ApiError(404, 1202, "document not found")
        if expected and expected != rev_value(current["_rev"]):
            raise self._conflict(current, "conflict, _rev values do not match")
        meta = {"_id": current["_id"], "_key": key}
        if method == "DELETE":
            del col.docs[key]
            out = {**meta, "_rev": current["_rev"]}
            if truthy(query.get("returnOld")):
                out["old"] = current
            return self._written(db, col, query, out, 200)
        user = {k: v for k, v in body.items() if k not in ("_key", "_id", "_rev")}
        if method == "PATCH":
            keep_null = truthy(query.get("keepNull", "true"))
            merge = truthy(query.get("mergeObjects", "true"))
            user = _merge({k: v for k, v in current.items() if k not in meta and k != "_rev"},
                          user, keep_null, merge)
        new = {**meta, "_rev": self.new_rev(), **user}
        col.check_unique(new, key)
        col.docs[key] = new
        out = {**meta, "_rev": new["_rev"], "_oldRev": current["_rev"]}
        if truthy(query.get("returnOld")):
            out["old"] = current
        if truthy(query.get("returnNew")):
            out["new"] = copy.deepcopy(new)
        return self._written(db, col, query, out, 201)

    def _insert(self, db: Database, col: Collection, query: dict, body: Any):
        if not isinstance(body, dict):
            raise ApiError(400, 1227, "invalid document type")
        key = body.get("_key")
        if key is not None and not col.user_keys:
            raise ApiError(400, 1222, "unexpected document key")
        if key is None:
            key = str(self._next())
        elif not isinstance(key, str) or not KEY_RE.match(key):
            raise ApiError(400, 1221, "illegal document key")
        user = {k: v for k, v in body.items() if k not in ("_key", "_id", "_rev")}
        meta = {"_id": f"{col.name}/{key}", "_key": key}
        old = col.docs.get(key)
        mode = query.get("overwriteMode") or ("replace" if truthy(query.get("overwrite")) else "")
        if old is not None:
            if mode == "ignore":
                return self._written(db, col, query, {**meta, "_rev": old["_rev"]}, 201)
            if mode not in ("replace", "update"):
                raise ApiError(409, 1210, "unique constraint violated - in index primary of type "
                               f"primary over '_key'; conflicting key: {key}")
            if mode == "update":
                user = _merge({k: v for k, v in old.items() if k not in ("_id", "_key", "_rev")},
                              user, truthy(query.get("keepNull", "false")),
                              truthy(query.get("mergeObjects", "true")))
        new = {"_key": key, "_id": meta["_id"], "_rev": self.new_rev(), **user}
        col.check_unique(new, key)
        col.docs[key] = new
        out: dict[str, Any] = {**meta, "_rev": new["_rev"]}
        if old is not None:
            out["_oldRev"] = old["_rev"]
            if truthy(query.get("returnOld")):
                out["old"] = old
        if truthy(query.get("returnNew")):
            out["new"] = copy.deepcopy(new)
        return self._written(db, col, query, out, 201)

    def _written(self, db: Database, col: Collection, query: dict, out: dict, sync_code: int):
        code = sync_code if (truthy(query.get("waitForSync")) or col.wait_for_sync) else 202
        headers = {"Etag": f'"{out["_rev"]}"',
                   "Location": f"/_db/{quote(db.name)}/_api/document/{col.name}/"
                               f"{quote(out['_key'], safe='')}"}
        return code, ({} if truthy(query.get("silent")) else out), headers

    @staticmethod
    def _header_rev(headers: Any, name: str) -> int:
        """RestVocbaseBaseHandler::extractRevision: a present but invalid value never matches."""
        value = headers.get(name)
        if value is None:
            return 0
        value = value.strip(" \t")
        value = value[1:] if value[:1] in ('"', "'") else value
        value = value[:-1] if value[-1:] in ('"', "'") else value
        rid = rev_value(value)
        return rid if rid not in (0, _MAX) else _MAX

    @staticmethod
    def _conflict(current: dict, message: str) -> ApiError:
        return ApiError(412, 1200, message, headers={"Etag": f'"{current["_rev"]}"'},
                        _id=current["_id"], _key=current["_key"], _rev=current["_rev"])
