"""python-arango's own test suite (tests/ at commit ea9c386, 8.3.2 + 1) against the stand-in.

The suite is written for a real ArangoDB; here it runs unchanged in a subprocess against
`ArangoStandIn` with its own conftest options (--host/--port/--root/--password/--secret, and
--skip for what a single community server without a keyfile, Foxx or JS transactions lacks).
Its files for the APIs the store uses are in scope; every test of them must pass unless it is
listed in out_of_scope.txt, and every listed test must not pass, so the list stays honest.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.arango_standin import ArangoStandIn
from tests.infra.missing import unavailable

HERE = Path(__file__).resolve().parent
THIRD_PARTY = HERE / "vendor"  # python-arango's tests at ea9c386, unmodified (vendor/README.md)
TARBALL = "python-arango-ea9c386-tests.tar.gz"
PREFIX = "python-arango-tests"
IN_SCOPE = ("test_database.py", "test_collection.py", "test_document.py", "test_index.py",
            "test_cursor.py", "test_aql.py", "test_transaction.py")
# conftest's own --skip choices: no hot backups, no batch API, no JWT keyfile, no Foxx, no
# JavaScript transactions, no tasks, no (former) enterprise features on this server
SKIP = ("backup", "batch", "jwt-secret-keyfile", "foxx", "js-transactions", "task", "enterprise")
RUN_TIMEOUT = 170


def load_out_of_scope(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(whole files -> reason, single tests -> reason) from `entry  # reason` lines."""
    files: dict[str, str] = {}
    tests: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry, _, reason = line.partition(" # ")
        entry, reason = entry.strip(), reason.strip()
        assert entry and reason, f"{path.name}:{number}: expected `entry # reason`, got {line!r}"
        target = tests if "::" in entry else files
        assert entry not in target, f"{path.name}:{number}: {entry} listed twice"
        target[entry] = reason
    return files, tests


def verified_tarball() -> Path:
    tarball = THIRD_PARTY / TARBALL
    sums = THIRD_PARTY / "SHA256SUMS"
    if not tarball.is_file() or not sums.is_file():
        unavailable(f"python-arango's test suite is missing: {tarball} (and SHA256SUMS)")
    expected = {name: digest for digest, _, name in
                (line.partition("  ") for line in sums.read_text().splitlines() if line.strip())}
    actual = hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert expected.get(TARBALL) == actual, f"{TARBALL}: sha256 {actual}, SHA256SUMS says " \
                                            f"{expected.get(TARBALL)}"
    return tarball


def results(junit: Path) -> dict[str, tuple[str, str]]:
    """`file.py::test[params]` -> (passed | failure | error | skipped, message)."""
    out: dict[str, tuple[str, str]] = {}
    for case in ET.parse(junit).iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}.py::{case.get('name')}"
        status, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                lines = (child.get("message") or "").splitlines()
                status, message = child.tag, lines[0][:200] if lines else ""
                break
        if out.get(name, ("passed",))[0] == "passed":  # a teardown error may be a 2nd entry
            out[name] = status, message
    return out


def test_python_arango_suite_against_the_standin(tmp_path: Path) -> None:
    tarball = verified_tarball()
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path, filter="data")
    root = tmp_path / PREFIX
    suite_files = sorted(p.name for p in (root / "tests").glob("test_*.py"))
    out_files, out_tests = load_out_of_scope(HERE / "out_of_scope.txt")
    assert set(IN_SCOPE) <= set(suite_files), "in-scope files missing from the suite"
    assert not set(out_files) & set(IN_SCOPE), "a file is both in scope and out of scope"
    assert sorted(set(suite_files) - set(IN_SCOPE)) == sorted(out_files), \
        "every other file of the suite must be listed out of scope (and only those)"

    password, secret = secrets.token_hex(8), secrets.token_hex(16)
    junit = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    with ArangoStandIn(username="root", password=password, jwt_secret=secret, general_aql=True,
                       databases=()) as arango:
        port = arango.url.rsplit(":", 1)[1]
        command = [sys.executable, "-m", "pytest", *(f"tests/{f}" for f in IN_SCOPE),
                   "--host", "127.0.0.1", "--port", port, "--root", "root",
                   "--password", password, "--secret", secret, "--skip", *SKIP,
                   "-p", "no:cacheprovider", "-p", "no:warnings", "-o", "addopts=", "-q",
                   "--timeout", "60", f"--junitxml={junit}"]
        started = time.monotonic()
        run = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                             timeout=RUN_TIMEOUT, check=False)
        elapsed = time.monotonic() - started
    tail = (run.stdout + run.stderr)[-3000:]
    assert run.returncode in (0, 1) and junit.is_file(), f"suite did not run:\n{tail}"
    outcome = results(junit)
    for name in IN_SCOPE:
        assert any(t.startswith(f"{name}::") for t in outcome), f"no test of {name} ran:\n{tail}"

    passed = sorted(t for t, (s, _) in outcome.items() if s == "passed")
    unexpected = sorted(f"{t}: {s}: {m}" for t, (s, m) in outcome.items()
                        if s != "passed" and t not in out_tests)
    listed_passing = sorted(t for t in out_tests if outcome.get(t, ("", ""))[0] == "passed")
    stale = sorted(t for t in out_tests if t not in outcome)
    print(f"python-arango suite against the stand-in: {len(outcome)} in-scope tests, "
          f"{len(passed)} passed, {len(outcome) - len(passed)} failed or skipped (listed out of scope: "
          f"{len(out_tests)}), {len(out_files)} files out of scope, {elapsed:.1f}s")
    problems = [*(f"fails against the stand-in: {t}" for t in unexpected),
                *(f"listed out of scope but passes (remove it): {t}" for t in listed_passing),
                *(f"listed out of scope but not in the suite: {t}" for t in stale)]
    assert not problems, "\n".join(problems)
