"""Where browsers and scripts reach each function: `QM_PUBLIC_URLS`, read once at import.

In production each function is its own Knative Service with its own URL, so a
page served by `status` (Swagger UI at /docs, the dashboard at /ui) must send
a start to `start`'s URL, a stop to `stop`'s. Set

    QM_PUBLIC_URLS='{"start": "https://start.example", "stop": "https://stop.example",
                     "telemetry": "https://telemetry.example", "status": "https://status.example"}'

(any subset; a function left out is reached on the page's own origin, which is
also the default for all of them and what `make run`'s all-in-one process
needs). This module is the only reader of the variable; `shared/core/config.py`
owns every other setting.

A function on another origin than the page must answer CORS preflights for the
browser to call it; put the Services behind one host routed by path (e.g. an
ingress or DomainMapping) to stay same-origin.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

FUNCTIONS = ("start", "stop", "telemetry", "status")
ENV = "QM_PUBLIC_URLS"


def parse(raw: str | None) -> dict[str, str]:
    """{function: base URL without a trailing slash}; empty means same origin for all.

    :raises ValueError: not a JSON object of known functions to http(s) URLs
    """
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"{ENV} must be a JSON object {{function: url}}: {e}") from e
    if not isinstance(value, dict):
        raise ValueError(f"{ENV} must be a JSON object {{function: url}}, got {type(value).__name__}")
    urls: dict[str, str] = {}
    for name, url in value.items():
        if name not in FUNCTIONS:
            raise ValueError(f"{ENV}: unknown function {name!r}; one of {', '.join(FUNCTIONS)}")
        if not isinstance(url, str) or not url.strip():
            raise ValueError(f"{ENV}: {name} must be a URL string")
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{ENV}: {name} must be an http(s) URL without query, got {url!r}")
        urls[name] = url.strip().rstrip("/")
    return urls


def from_env(env: Mapping[str, str]) -> dict[str, str]:
    return parse(env.get(ENV))


URLS: dict[str, str] = from_env(os.environ)
"""The process's public URLs, read once when the module is imported."""


def base(function: str, urls: Mapping[str, str] | None = None) -> str:
    """The URL prefix for a function's paths: '' (same origin) unless configured."""
    return (URLS if urls is None else urls).get(function, "")
