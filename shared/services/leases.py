"""Concurrency slots as leases in the state store.

A target limited to N concurrent Jobs has N slot documents (`<target>:<n>`, a
valid ArangoDB key), and "*" the overall limit. A job takes a free or expired slot with a
compare-and-set; the holder is the job's id, so a repeated acquire by any
instance for the same job finds its own slot instead of taking a second.
Slots are released when the job ends; a lease not renewed (by the job's
telemetry or the periodic sweep) within its TTL expires, so a crashed or
scaled-to-zero function never leaks a slot.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from shared.adapters import metrics
from shared.adapters.state import AlreadyExists, RevisionConflict, StateStore

GLOBAL = "*"
# Compare-and-set rounds before a take gives up for now: each lost round means another instance
# took a slot meanwhile, and a job that gets none waits for the next chance (telemetry, sweep).
MAX_ROUNDS = 8


def slot_key(pool: str, n: int) -> str:
    return f"{pool}:{n}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Slots:
    store: StateStore
    limits: dict[str, int]
    ttl_s: int

    def limited(self, target: str) -> bool:
        return target in self.limits or GLOBAL in self.limits

    def _pools(self, target: str) -> list[str]:
        return [p for p in (target, GLOBAL) if p in self.limits]

    def _try(self, pool: str, holder: str, *, renew_only: bool = False) -> bool:
        for _ in range(MAX_ROUNDS):
            taken = self._round(pool, holder, renew_only=renew_only)
            if taken is not None:
                return taken
        return False

    def _round(self, pool: str, holder: str, *, renew_only: bool) -> bool | None:
        """True: holds a slot; False: none free; None: lost a race, look again."""
        now = _now()
        expires = (now + dt.timedelta(seconds=self.ttl_s)).isoformat()
        body = json.dumps({"holder": holder, "expires_at": expires, "pool": pool})
        free_key: tuple[str, str | None] | None = None
        for n in range(self.limits[pool]):
            key = slot_key(pool, n)
            found = self.store.get(key)
            if found is None:
                free_key = free_key or (key, None)
                continue
            doc, rev = found
            lease = json.loads(doc)
            if lease.get("holder") == holder:
                try:
                    self.store.replace(key, body, rev=rev)
                except RevisionConflict:
                    return None  # its own slot changed meanwhile (renewed elsewhere): look again
                return True
            expired = lease.get("holder") and lease["expires_at"] < now.isoformat()
            if not lease.get("holder") or expired:
                free_key = free_key or (key, rev)
        if renew_only or free_key is None:
            return False
        key, free_rev = free_key
        try:
            if free_rev is None:
                self.store.create(key, body)
            else:
                if json.loads(self.store.get(key)[0]).get("holder"):  # type: ignore[index]
                    metrics.LEASE_EXPIRATIONS.labels(pool).inc()
                self.store.replace(key, body, rev=free_rev)
        except (AlreadyExists, RevisionConflict):
            return None  # someone took that one meanwhile
        return True

    def acquire(self, target: str, holder: str) -> bool:
        """Take (or keep) a slot in every pool the target counts against."""
        taken: list[str] = []
        for pool in self._pools(target):
            if not self._try(pool, holder):
                for p in taken:
                    self._release(p, holder)
                return False
            taken.append(pool)
        return True

    def renew(self, target: str, holder: str) -> None:
        for pool in self._pools(target):
            self._try(pool, holder, renew_only=True)

    def _release(self, pool: str, holder: str) -> None:
        for n in range(self.limits[pool]):
            key = slot_key(pool, n)
            found = self.store.get(key)
            if found and json.loads(found[0]).get("holder") == holder:
                try:
                    self.store.replace(key, json.dumps({"holder": None, "expires_at": "", "pool": pool}),
                                       rev=found[1])
                except RevisionConflict:
                    pass
                return

    def release(self, target: str, holder: str) -> None:
        for pool in self._pools(target):
            self._release(pool, holder)

    def usage(self, pool: str) -> tuple[int, int]:
        """(slots held and not expired, limit)."""
        now = _now().isoformat()
        held = 0
        for n in range(self.limits.get(pool, 0)):
            found = self.store.get(slot_key(pool, n))
            if found:
                lease = json.loads(found[0])
                held += bool(lease.get("holder") and lease["expires_at"] >= now)
        return held, self.limits.get(pool, 0)

    def full_pool(self, target: str) -> str | None:
        """The first pool with no free slot, for the waiting reason."""
        for pool in self._pools(target):
            held, limit = self.usage(pool)
            if held >= limit:
                return f"{pool} {held}/{limit} in use"
        return None
