"""The seed's examples plan exactly as they did before partitions existed: the same jobs, needs,
first wave and Job manifests, compared with the code of the last revision without partitions
(a git worktree of it), not with a copy of what we expect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

# Run in the tree given as argv[1]: the plan of each seed example, as JSON.
SCRIPT = """
import json, sys
from shared import runtime
from shared.core.models import QueueStart
from shared.examples import load
plans = {}
for name in ("historical", "realtime", "legacy"):
    plans[name] = runtime.get().service.plan(QueueStart.parse(load(name)))
print(json.dumps(plans, sort_keys=True))
"""
ADDED = ("skipped", "covering")  # new keys of the plan, empty for an unpartitioned queue
ESTIMATE = "estimate"  # new too: the expected duration (shared/core/eta.py)


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True).stdout.strip()


def _before() -> str:
    """The last revision without shared/core/partitions.py (HEAD while it is uncommitted)."""
    added = _git("log", "--format=%H", "--diff-filter=A", "--", "shared/core/partitions.py").splitlines()
    return f"{added[-1]}^" if added else "HEAD"


def _plans(tree: Path, local: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QM_", "ARANGO_", "KAFKA_", "JOB_"))}
    env.update(PYTHONPATH=str(tree), QM_LOCAL_DIR=str(local))
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tree, env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.splitlines()[-1])


def test_seed_examples_plan_as_before_partitions(tmp_path: Path) -> None:
    before = tmp_path / "before"
    _git("worktree", "add", "--detach", "-q", str(before), _before())
    try:
        old = _plans(before, tmp_path / "old")
    finally:
        _git("worktree", "remove", "--force", str(before))
    new = _plans(ROOT, tmp_path / "new")
    assert sorted(new) == ["historical", "legacy", "realtime"]
    for name, plan in new.items():
        assert all(plan.pop(key) == [] for key in ADDED), name
        assert "seconds" in plan.pop(ESTIMATE), name
        assert plan == old[name], name
        assert len(plan["jobs"]) == len(old[name]["jobs"]) >= 1
