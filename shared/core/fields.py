"""The validated scalars of the wire models, each rule written once.

Each pattern here is both what the validator checks and what the OpenAPI
document says (`json_schema_extra`), in the regex syntax JSON Schema and
Python share: ASCII classes (`[0-9]`, never `\\d`, which in Python takes
any script's digits) and whole-string matches (`fullmatch`: Python's `$`
also matches before a trailing newline).
"""

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

from shared.core import constants

MAX_PARAMS = 32
MAX_STRING = 1024
MAX_LIST = 100

# A symbol as sent: 2-20 letters or digits, spaces around allowed; stored upper-cased.
SYMBOL_RE = re.compile(r"^ *[A-Za-z0-9]{2,20} *$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# ArangoDB's traditional collection naming: a letter first, then letters, digits, _ or -.
COLLECTION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,255}$")
# Request parameters that name ArangoDB collections and so must be valid names.
PERIOD = "{period}"
"""In a request parameter, the period its Job loads (`2024_06`; `shared/core/partitions.py`)."""
# What `check_param` takes for a collection name: COLLECTION_RE, where `{period}` (which starts
# with a digit) counts as one character after the first.
NAME_WITH_PERIOD = r"^[A-Za-z](?:[A-Za-z0-9_-]|\{period\}){0,255}$"
COLLECTION_PARAMS = frozenset(
    {"collection_inputs", "collection_output", "graph_collection", "source", "collection"}
)
QUEUE_OPTIONS = ("priority", "timeout_seconds", "allow_overlap", "on_failure")
"""Queue-level options the legacy single-loader form accepts too."""
RESERVED_PARAMS = frozenset({"target", "type", "queue_id", "job_id", "id", "depends_on"})

# A real calendar date, years 0001-9999 (Python's range), leap years included.
_YEAR = r"(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_MONTH_DAY = (r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              r"|02-(?:0[1-9]|1[0-9]|2[0-8]))")
_LEAP_DAY = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)-02-29"
DATE_PATTERN = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})"
# An ISO-8601 time as Jobs report it: a real date, optionally a time (minutes; seconds and a
# fraction optional) and a zone (Z or +hh:mm).
STAMP_PATTERN = (rf"^{DATE_PATTERN}(?:T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{{1,9}})?)?"
                 r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?$")
# Two real dates; that the first is not after the second, no pattern can say.
TIME_RANGE_RE = re.compile(rf"^{DATE_PATTERN}:{DATE_PATTERN}$")


def parse_time_range(value: str) -> tuple[dt.date, dt.date]:
    """`YYYY-MM-DD:YYYY-MM-DD`, real dates, start <= end."""
    if not TIME_RANGE_RE.fullmatch(value):
        raise ValueError("time_range must look like YYYY-MM-DD:YYYY-MM-DD, two real dates")
    start, end = (dt.date.fromisoformat(part) for part in value.split(":"))
    if start > end:
        raise ValueError(f"time_range starts ({start}) after it ends ({end})")
    return start, end


def is_streaming(type_: str) -> bool:
    """A request that never finishes on its own: the legacy `ws` and `realtime` types, and
    `ws_*`, `realtime_*`, `*_stream`. The one rule: the loader type, the lineage and the
    partitions all ask it."""
    return type_ in ("ws", "realtime") or type_.startswith(("ws_", "realtime_")) or type_.endswith("_stream")


def _symbol(value: str) -> str:
    if not SYMBOL_RE.fullmatch(value):
        raise ValueError("symbol must be 2-20 letters or digits, e.g. BTCUSDT")
    return value.strip(" ").upper()


def _time_range(value: str) -> str:
    parse_time_range(value)
    return value


Symbol = Annotated[str, AfterValidator(_symbol), Field(json_schema_extra={"pattern": SYMBOL_RE.pattern})]
TimeRange = Annotated[str, AfterValidator(_time_range),
                      Field(json_schema_extra={"pattern": TIME_RANGE_RE.pattern})]
TypeName = Annotated[str, StringConstraints(pattern=NAME_RE.pattern)]
Target = Annotated[str, Field(json_schema_extra={"enum": list(constants.TARGETS)})]


def _whole_number(value: Any) -> Any:
    """JSON Schema's `integer`: any number with no fraction (2.0 is one); never a bool or a string."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_whole_number)]
"""An integer field of a strict model, as JSON Schema reads `integer`."""


def integer(ge: int, le: int) -> Any:
    """`Integer` within bounds the document shows as `minimum`/`maximum` (the bounds go on the
    int, before the validator wraps it: after it, JSON Schema would get pydantic's `ge`/`le`)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_whole_number)]

COUNT_TEXT = re.compile(r"^[0-9]{1,15}$")
MAX_COUNT = 2**53 - 1  # what any JSON reader keeps exactly


def _count(value: Any) -> Any:
    if isinstance(value, str) and COUNT_TEXT.fullmatch(value):
        return int(value)
    return _whole_number(value)


Count = Annotated[int, BeforeValidator(_count), Field(ge=0, le=MAX_COUNT), WithJsonSchema(
    {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
               {"type": "string", "pattern": COUNT_TEXT.pattern}]})]
"""A count a Job reports: a JSON integer, or its ASCII digits as a string (some producers quote
numbers); never a bool, a fraction or a negative."""


def params_schema(schema: dict[str, Any]) -> None:
    """What `check_param` takes, as JSON Schema, on a request's schema (its extra fields)."""
    text = {"type": "string", "maxLength": MAX_STRING}
    scalar = {"anyOf": [text, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
    name = {"type": "string", "pattern": NAME_WITH_PERIOD}
    schema["propertyNames"] = {"pattern": NAME_RE.pattern, "not": {"enum": sorted(RESERVED_PARAMS - set(
        schema.get("properties", {})))}}
    schema["maxProperties"] = MAX_PARAMS + len(schema.get("properties", {}))
    schema["additionalProperties"] = {"anyOf": [scalar, {"type": "array", "maxItems": MAX_LIST, "items": scalar}]}
    for key in sorted(COLLECTION_PARAMS):
        schema.setdefault("properties", {})[key] = {
            "description": "ArangoDB collection name(s)",
            "anyOf": [name, {"type": "array", "maxItems": MAX_LIST, "items": name}]}


def any_case(words: list[str]) -> str:
    """A JSON Schema pattern for these words in any letter case (as `.lower()` reads them)."""
    return "^(?:" + "|".join("".join(f"[{c}{c.upper()}]" for c in w) for w in words) + ")$"


def check_param(key: str, value: Any) -> None:
    if not NAME_RE.fullmatch(key):
        raise ValueError(f"parameter name {key!r} must match {NAME_RE.pattern}")
    if key in RESERVED_PARAMS:
        raise ValueError(f"parameter name {key!r} is reserved")
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(value) > MAX_LIST:
        raise ValueError(f"{key}: at most {MAX_LIST} items")
    for item in items:
        if key in COLLECTION_PARAMS and not isinstance(item, str):
            raise ValueError(f"{key}: {item!r} is not a collection name: names are strings")
        if isinstance(item, bool | int | float) or item is None:
            continue
        if not isinstance(item, str):
            raise ValueError(f"{key}: values must be strings, numbers, booleans or lists of them")
        if len(item) > MAX_STRING:
            raise ValueError(f"{key}: strings are limited to {MAX_STRING} characters")
        if key in COLLECTION_PARAMS and not COLLECTION_RE.fullmatch(item.replace(PERIOD, "0")):
            raise ValueError(
                f"{key}: {item!r} is not a valid ArangoDB collection name "
                "(a letter, then letters, digits, '_' or '-', at most 256; {period} for the period)"
            )
