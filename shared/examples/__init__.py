"""The seed's example payloads, used by the demo, the tests and the API docs."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

NAMES = ("historical", "realtime", "legacy")


def load(name: str) -> dict[str, Any]:
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text())
