"""A small AQL subset for the ArangoDB stand-in (see tests/arango_standin_aql.py).

FOR v IN <collection | @@bind | expression>, FILTER, LET, SORT ... ASC|DESC, LIMIT [offset,]
count, INSERT / UPDATE [WITH] / REPLACE [WITH] / REMOVE ... IN <collection> [OPTIONS {...}],
RETURN [DISTINCT]; expressions with literals, bind parameters, attribute and index access,
object/array literals, == != < <= > >= IN / NOT IN, AND/OR/NOT, ?:, + - * / %, and a few
functions (LENGTH, COUNT, RAND, CONCAT, MERGE, TO_STRING, IS_NULL, HAS), evaluated in
tests/arango_standin_aqlrun.py. Writes go through the stand-in's document path, so `_rev`,
unique indexes and merge rules are the same as over /_api/document.
Anything else is a syntax error (1501), as an unknown construct would be in arangod.
"""

from __future__ import annotations

import re
from typing import Any

try:
    from .arango_standin_aql import ApiError
except ImportError:  # imported as a top-level module
    from arango_standin_aql import ApiError  # type: ignore[no-redef]

TOKEN = re.compile(r"\s+|//[^\n]*|/\*.*?\*/|(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
                   r"|(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')|(?P<bind>@@?\w+)"
                   r"|(?P<name>`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)"
                   r"|(?P<op>==|!=|<=|>=|&&|\|\||[<>!?.,:()\[\]{}+\-*/%=])", re.S)
KEYWORDS = {"FOR", "IN", "FILTER", "LET", "SORT", "LIMIT", "RETURN", "DISTINCT", "ASC", "DESC",
            "INSERT", "UPDATE", "REPLACE", "REMOVE", "WITH", "INTO", "OPTIONS", "AND", "OR",
            "NOT", "TRUE", "FALSE", "NULL", "COLLECT"}
WRITES = {"INSERT", "UPDATE", "REPLACE", "REMOVE"}


def _syntax(near: str) -> ApiError:
    return ApiError(400, 1501, f"AQL: syntax error, unexpected {near!r} (stand-in AQL subset) "
                    "(while parsing)")


def tokenize(query: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(query):
        m = TOKEN.match(query, pos)
        if not m:
            raise _syntax(query[pos:pos + 20])
        pos = m.end()
        kind = m.lastgroup
        if kind is None:
            continue
        text = m.group(kind)
        if kind == "num":
            out.append(("lit", float(text) if any(c in text for c in ".eE") else int(text)))
        elif kind == "str":
            out.append(("lit", re.sub(r"\\(.)", r"\1", text[1:-1])))
        elif kind == "name" and text.startswith("`"):
            out.append(("name", text[1:-1]))
        elif kind == "name" and text.upper() in KEYWORDS:
            up = text.upper()
            out.append(("lit", {"TRUE": True, "FALSE": False}.get(up)) if up in
                       ("TRUE", "FALSE", "NULL") else ("kw", up))
        else:
            out.append((kind, text))
    return out + [("end", None)]


class Parser:
    def __init__(self, query: str):
        self.toks, self.i = tokenize(query), 0
        self.no_in = False  # in `UPDATE x WITH y IN col`, IN ends the expression

    def peek(self, *want: str) -> bool:
        return self.toks[self.i][1] in want and self.toks[self.i][0] in ("kw", "op")

    def take(self, *want: str) -> Any:
        kind, value = self.toks[self.i]
        if want and (value not in want or kind not in ("kw", "op")):
            raise _syntax(str(value))
        self.i += 1
        return value

    def statements(self) -> list[tuple]:
        ops: list[tuple] = []
        while self.toks[self.i][0] != "end":
            word = self.take()
            if word == "FOR":
                var = self.name()
                self.take("IN")
                ops.append(("FOR", var, self.expr()))
            elif word in ("FILTER", "RETURN"):
                distinct = word == "RETURN" and self.peek("DISTINCT") and bool(self.take())
                ops.append((word, self.expr(), distinct))
            elif word == "LET":
                var = self.name()
                self.take("=")
                ops.append(("LET", var, self.expr()))
            elif word == "SORT":
                keys = [self.sort_key()]
                while self.peek(","):
                    self.take()
                    keys.append(self.sort_key())
                ops.append(("SORT", keys))
            elif word == "LIMIT":
                first = self.expr()
                second = self.take() and self.expr() if self.peek(",") else None
                ops.append(("LIMIT", first if second else ("lit", 0), second or first))
            elif word in WRITES:
                self.no_in = True
                what, with_ = self.expr(), None
                if word in ("UPDATE", "REPLACE") and self.peek("WITH"):
                    self.take()
                    with_ = self.expr()
                self.no_in = False
                self.take("IN", "INTO")
                col = self.primary()
                options = self.take() and self.expr() if self.peek("OPTIONS") else ("lit", {})
                ops.append((word, what, with_, col, options))
            else:
                raise _syntax(str(word))
        if not ops or ops[-1][0] not in ("RETURN", *WRITES):
            raise ApiError(400, 1501, "AQL: syntax error, unexpected end of query (while parsing)")
        return ops

    def name(self) -> str:
        kind, value = self.toks[self.i]
        if kind != "name":
            raise _syntax(str(value))
        self.i += 1
        return value

    def sort_key(self) -> tuple[Any, bool]:
        expr = self.expr()
        desc = self.peek("ASC", "DESC") and self.take() == "DESC"
        return expr, desc

    def expr(self) -> Any:
        left = self.conj()
        while self.peek("OR", "||"):
            self.take()
            left = ("or", left, self.conj())
        if self.peek("?"):
            self.take()
            then = self.expr()
            self.take(":")
            return ("if", left, then, self.expr())
        return left

    def conj(self) -> Any:
        left = self.neg()
        while self.peek("AND", "&&"):
            self.take()
            left = ("and", left, self.neg())
        return left

    def neg(self) -> Any:
        if self.peek("NOT", "!"):
            self.take()
            return ("not", self.neg())
        return self.comparison()

    def comparison(self) -> Any:
        left = self.additive()
        while True:
            if self.peek("==", "!=", "<", "<=", ">", ">=") or (self.peek("IN")
                                                               and not self.no_in):
                left = ("cmp", self.take(), left, self.additive())
            elif self.peek("NOT") and self.toks[self.i + 1][1] == "IN" and not self.no_in:
                self.i += 2
                left = ("not", ("cmp", "IN", left, self.additive()))
            else:
                return left

    def additive(self) -> Any:
        left = self.term()
        while self.peek("+", "-"):
            left = ("arith", self.take(), left, self.term())
        return left

    def term(self) -> Any:
        left = self.postfix()
        while self.peek("*", "/", "%"):
            left = ("arith", self.take(), left, self.postfix())
        return left

    def postfix(self) -> Any:
        node = self.primary()
        while self.peek(".", "["):
            if self.take() == "." and self.toks[self.i][0] == "bind":
                node = ("get", node, self.primary())
            elif self.toks[self.i - 1][1] == ".":
                node = ("get", node, ("lit", self.name()))
            else:
                node = ("get", node, self.expr())
                self.take("]")
        return node

    def primary(self) -> Any:
        kind, value = self.toks[self.i]
        self.i += 1
        if kind == "lit":
            return ("lit", value)
        if kind == "bind":
            return ("bind", value[1:])
        if kind == "op" and value == "-":
            return ("arith", "-", ("lit", 0), self.postfix())
        if kind == "op" and value == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if kind == "op" and value == "[":
            items = self.items("]", self.expr)
            return ("array", items)
        if kind == "op" and value == "{":
            return ("object", self.items("}", self.pair))
        if kind == "name" and self.peek("("):
            self.take()
            return ("call", value.upper(), self.items(")", self.expr))
        if kind == "name":
            return ("var", value)
        raise _syntax(str(value))

    def items(self, close: str, item: Any) -> list:
        out: list = []
        while not self.peek(close):
            out.append(item())
            if not self.peek(close):
                self.take(",")
        self.take(close)
        return out

    def pair(self) -> tuple[str, Any]:
        kind, value = self.toks[self.i]
        if kind not in ("name", "lit") or not isinstance(value, str):
            raise _syntax(str(value))
        self.i += 1
        if not self.peek(":"):
            return value, ("var", value)
        self.take(":")
        return value, self.expr()
