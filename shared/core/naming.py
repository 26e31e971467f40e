"""Naming conventions: Job names, and the dataset a loader/connector pair produces.

A `loader-producer` of (symbol, type, time range) writes the Kafka topic, and
the `arango-connector` of the same (symbol, type, time range) fills the
ArangoDB collection, of one *dataset name*:

    <base asset>_<type without "api_">_<period>

with the base asset the symbol less its quote currency (BTCUSDT -> btc) and the
period `YYYY_MM` for one whole calendar month, `YYYY_MM_DD` for one day, and
`YYYY_MM_DD_YYYY_MM_DD` otherwise. So BTCUSDT api_candles_5m over June 2024 is
`btc_candles_5m_2024_06`, and BTCUSDT ws_trades on 2024-08-01 is
`btc_ws_trades_2024_08_01`, the names the seed's example payloads use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from shared.core.fields import parse_time_range

QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "USD", "TRY")
MAX_DNS_LABEL = 63


def base_asset(symbol: str) -> str:
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)].lower()
    return symbol.lower()


def period(start: dt.date, end: dt.date) -> str:
    if start == end:
        return start.strftime("%Y_%m_%d")
    last = start.replace(day=31) if start.month == 12 else (
        start.replace(month=start.month + 1, day=1) - dt.timedelta(days=1))
    if start.day == 1 and end == last:
        return start.strftime("%Y_%m")
    return f"{start:%Y_%m_%d}_{end:%Y_%m_%d}"


def dataset_name(symbol: str, type_: str, time_range: str) -> str:
    start, end = parse_time_range(time_range)
    return dataset(symbol, type_, period(start, end))


def dataset(symbol: str, type_: str, period_name: str) -> str:
    """The dataset of (symbol, type) for one period name (`2024_06`, `2024_06_03`, ...)."""
    return f"{base_asset(symbol)}_{type_.removeprefix('api_')}_{period_name}"


def dns_label(text: str) -> str:
    """Lower-case, [a-z0-9-], no leading/trailing dash."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def job_name(queue_id: str, index: int, target: str, type_: str) -> str:
    """Deterministic per (queue, request): a retried launch finds the same Job.

    `sf-<12 hex of the queue id>-<index>-<target>-<type>`, cut to 63
    characters with a short hash keeping cut names unique.
    """
    qid = re.sub(r"[^a-f0-9]", "", queue_id.lower())[:12] or hashlib.sha1(
        queue_id.encode()
    ).hexdigest()[:12]
    name = dns_label(f"sf-{qid}-{index:02d}-{target}-{type_}")
    if len(name) <= MAX_DNS_LABEL:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:6]
    return f"{name[: MAX_DNS_LABEL - 7].rstrip('-')}-{digest}"


def label_value(text: str) -> str:
    """A valid label value: <= 63 chars of [A-Za-z0-9_.-], alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:MAX_DNS_LABEL]
    return value.strip("-_.")


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def counter_part(value: str) -> str:
    """A counter name part, safe as an ArangoDB key (`.` separates the parts)."""
    return _UNSAFE.sub(lambda m: "%" + "".join(f"{b:02X}" for b in m.group().encode()), value)


def counter_unpart(value: str) -> str:
    return re.sub(r"(%[0-9A-F]{2})+", lambda m: bytes.fromhex(m.group().replace("%", "")).decode(), value)
