"""shared.core.cron against robfig/cron v3.0.1 itself (the parser and runner of Knative's PingSource):
tests/infra/cronref prints robfig's `Schedule.Next` for a batch of queries, each of which must equal
`cron.next_after` iterated as many times where the zone keeps one offset from a day before to a day
after them, and elsewhere the wall clock's times (cron's docstring), found here by an oracle. The
corpus covers every descriptor, lists, ranges, steps, names, `?`, the two day fields (either, or
both when one is starred), months without the day asked for, zones whose clocks change (by an hour,
by 30 minutes, at midnight; offsets of +05:45 and +12:45) right before, inside and after each change
of 2026, and a seeded random part; then the expressions each must refuse."""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.core import cron
from tests.infra.dataplane import CACHE
from tests.infra.missing import unavailable

BUILD = Path(__file__).resolve().parents[1] / "infra" / "dataplane" / "build.sh"
BINARY = CACHE / "bin" / "cronref"
UTC = dt.UTC
N = 5
MINUTE, DAY = dt.timedelta(minutes=1), dt.timedelta(days=1)
STEP = dt.timedelta(hours=6)
SPAN = (dt.datetime(2023, 1, 1, tzinfo=UTC), dt.datetime(2060, 1, 1, tzinfo=UTC))
"""The offsets of each zone are looked up across SPAN: the corpus's instants and five years on."""

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
         "Pacific/Chatham", "America/Santiago")
"""Santiago changes its clocks at midnight: a day there may have no 00:00."""

EXPRESSIONS = (
    *cron.DESCRIPTORS,
    "* * * * *", "? ? ? ? ?", "0 0 * * *", "\t15 10 * * *\n", "5,10,15 * * * *", "0 0,12 * * *",
    "1-5 * * * *", "0 9-17 * * *", "0 22-23,0-2 * * *", "*/7 * * * *", "5/15 * * * *",
    "1-10/3 * * * *", "0 */5 * * *", "0 3/4 * * *", "*/1 * * * *", "59 23 * * *", "0 0 1 */2 *",
    "0 0 1 JAN *", "0 0 1 jan,Jul *", "0 0 1 mar-MAY *", "0 0 * * mon-fri", "0 8 * * MON,wed,Fri",
    "0 0 * * SUN", "0 0 * * Sat,sun", "0 0 * * 0-6", "0 12 1 feb/3 *", "30 6 * * tue/2",
    "0 0 13 * 5", "0 0 1,15 * 1", "0 0 1-7 * 1", "0 0 13 * *", "0 0 * * 5",  # both restricted: OR
    "0 0 13 * ?", "0 0 ? * 5", "0 0 */1 * 1", "0 0 1-7 * *",  # one starred: AND
    "0 0 13 * */2", "0 0 */2 * 1", "0 0 1-31/2 * */3", "0 0 13 * */1",  # */2 restricted, */1 starred
    "0 0 29 2 *", "0 12 29 FEB *", "0 0 29 2 1", "0 0 31 * *", "0 0 31 4,6,9,11 *",
    "0 0 31 1-12/2 *", "0 0 30,31 * *", "0 0 28-31 * *", "0 0 29-31 2 *",
    "0 0 30 2 *", "0 0 31 2 *", "0 0 31 2 1",
    "0 0 1 1 *", "0 0 31 12 *", "59 23 31 12 *", "0 0 1 1 1", "0,30 * * * *", "15,45 */2 * * *",
    "7 7 7 7 *", "0 0 5-20/5 * mon-fri", "00 00 01 01 *", "0-59/30 0-23/6 * * *",
)
NEVER = "0 0 30 2 *"
AGREEING = 1600  # of the 4,402 cases, those away from any clock change

DST_EXPRESSIONS = ("30 1 * * *", "30 2 * * *", "0 2 * * *", "0 3 * * *", "45 1 * * *", "15 2 * * *",
                   "50 2 * * *", "59 1 * * *", "*/15 * * * *", "*/7 * * * *", "0 * * * *", "30 * * * *",
                   "@hourly", "@daily", "0,30 1-3 * * *", "0 0 * * *", "15,45 23,0 * * *")
AROUND = tuple(dt.timedelta(seconds=s) for s in (-7200, -3660, -1807, -1, 0, 1, 900, 1800, 3570, 5400, 86400))
INSTANTS = (dt.datetime(2024, 2, 28, 23, 59, 59, tzinfo=UTC), dt.datetime(2026, 3, 29, 0, 44, 13, tzinfo=UTC),
            dt.datetime(2026, 10, 31, 22, 0, 0, 500000, tzinfo=UTC), dt.datetime(2027, 12, 31, 23, 0, 1, tzinfo=UTC))

INVALID = (
    "", "   ", "* * * *", "* * * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * 32 * *",
    "* * * 0 *", "* * * 13 *", "* * * * 7", "5-1 * * * *", "*/0 * * * *", "5/ * * * *", "/5 * * * *",
    "1-2-3 * * * *", "*/5/2 * * * *", "-1 * * * *", "a * * * *", "* * * FOO *", "* * * * MONDAY",
    "* * * JAN-FOO *", "* * * * SAT-SUN", "0x5 * * * *", "5.0 * * * *",
    "* * * * JAN", "* * * MON *", "JAN * * * *", "@yearl", "@YEARLY", "@ daily", "@", "1- * * * *",
    "-5 * * * *", "*/-2 * * * *", "99999999999999999999 * * * *", "4294967296 * * * *",
    "\u0663 * * * *", "\uff13 * * * *", "\u00b2 * * * *",  # digits other than ASCII
    "0\x1c0 * * *",  # a separator Python splits on and Go does not
)


@functools.cache
def _offsets(zone: str) -> tuple[tuple[dt.datetime, dt.timedelta], ...]:
    """(since, offset): each UTC offset of `zone` across SPAN and the instant (UTC) it took effect,
    found in steps of STEP, then to the minute (no zone here changes twice within STEP)."""
    tz, (at, end) = cron.zone(zone), SPAN
    found = [(at, at.astimezone(tz).utcoffset())]
    while at < end:
        step = at + STEP
        if step.astimezone(tz).utcoffset() != found[-1][1]:
            while at.astimezone(tz).utcoffset() == found[-1][1]:
                at += MINUTE
            found.append((at, at.astimezone(tz).utcoffset()))
        at = step
    return tuple(found)


def _transitions(zone: str, year: int) -> list[dt.datetime]:
    """The instants (UTC) at which `zone` changes its offset in `year`."""
    return [since for since, _ in _offsets(zone)[1:] if since.year == year]


def _random_field(rng: random.Random, low: int, high: int, names: tuple[str, ...]) -> str:
    def one() -> str:
        a, b = sorted(rng.randint(low, high) for _ in range(2))
        name = rng.random() < 0.3 and names
        kind = rng.randrange(8)
        if kind == 0:
            return rng.choice(("*", "?"))
        if kind == 1:
            return f"*/{rng.randint(1, high - low + 2)}"
        if kind == 2:
            return f"{a}/{rng.randint(1, 9)}"
        if kind == 3:
            return f"{a}-{b}/{rng.randint(1, 9)}"
        if kind == 4 and name:
            x, y = sorted(rng.sample(range(len(names)), 2))
            return f"{names[x]}-{names[y]}".lower() if rng.random() < 0.5 else f"{names[x]}-{names[y]}"
        if kind == 5:
            return f"{a}-{b}"
        return rng.choice(names) if name else str(a)
    return ",".join(one() for _ in range(rng.choice((1, 1, 1, 2, 3))))


MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def _random_cases(count: int) -> list[tuple[str, str, dt.datetime]]:
    rng = random.Random(20260329)
    start, span = dt.datetime(2024, 1, 1, tzinfo=UTC), 7 * 365 * 86400
    cases = []
    for _ in range(count):
        expr = " ".join((_random_field(rng, 0, 59, ()), _random_field(rng, 0, 23, ()),
                         _random_field(rng, 1, 31, ()), _random_field(rng, 1, 12, MONTH_NAMES),
                         _random_field(rng, 0, 6, DAY_NAMES)))
        after = start + dt.timedelta(seconds=rng.randrange(span), microseconds=rng.choice((0, 250000)))
        cases.append((expr, rng.choice(ZONES), after))
    return cases


def corpus() -> list[tuple[str, str, dt.datetime]]:
    cases = [(e, z, at) for e in EXPRESSIONS for z in ZONES for at in INSTANTS]
    for zone in ZONES:
        for change in _transitions(zone, 2026):
            cases += [(e, zone, change + d) for e in DST_EXPRESSIONS for d in AROUND]
    return cases + _random_cases(600)


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def robfig():
    """Queries to robfig, all in one run of cronref: [(expr, tz, after, n)] -> answers."""
    if shutil.which("go"):
        subprocess.run(["bash", str(BUILD), "cronref"], check=True, capture_output=True)
    elif not BINARY.is_file():
        unavailable("Go is needed to build tests/infra/cronref (robfig/cron v3.0.1)")

    def ask(queries: list[tuple[str, str, dt.datetime, int]]) -> list[dict]:
        lines = "".join(json.dumps({"expr": e, "tz": z, "after": _stamp(at), "n": n}) + "\n"
                        for e, z, at, n in queries)
        run = subprocess.run([str(BINARY)], input=lines, capture_output=True, text=True, check=True)
        answers = [json.loads(line) for line in run.stdout.splitlines()]
        assert len(answers) == len(queries), run.stderr
        return answers
    return ask


def ours(expr: str, tz: str, after: dt.datetime, n: int) -> list[str]:
    schedule, zone = cron.parse(expr), cron.zone(tz)
    fires: list[str] = []
    for _ in range(n):
        fire = cron.next_after(schedule, zone, after)
        if fire is None:
            break
        fires.append(_stamp(fire))
        after = fire
    return fires


def test_the_corpus_is_wide():
    cases = corpus()
    assert len(cases) >= 300
    assert {z for _, z, _ in cases} == set(ZONES)
    assert all(sum(e == d for e, _, _ in cases) for d in cron.DESCRIPTORS)
    assert len(_transitions("Europe/Berlin", 2026)) == 2 and len(_transitions("Asia/Kathmandu", 2026)) == 0
    assert _transitions("Europe/Berlin", 2026)[0] == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert _transitions("America/New_York", 2026)[1] == dt.datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def _day(schedule: cron.Cron, day: dt.date) -> bool:
    """`schedule` names `day`: robfig's rule for the two day fields."""
    dom, dow = day.day in schedule.days, day.isoweekday() % 7 in schedule.weekdays
    return day.month in schedule.months and ((dom and dow) if schedule.any_day else (dom or dow))


def _wall_times(schedule: cron.Cron, low: dt.datetime, high: dt.datetime):
    """The naive times in [low, high) that `schedule` names, ascending: day by day."""
    for day in (low.date() + DAY * i for i in range(((high - MINUTE).date() - low.date()).days + 1)):
        walls = (dt.datetime.combine(day, dt.time(h, m)) for h in schedule.hours for m in schedule.minutes)
        yield from (w for w in walls if low <= w < high) if _day(schedule, day) else ()


def oracle(expr: str, tz: str, after: dt.datetime, n: int) -> list[str]:
    """The first `n` fire times after `after` by cron's docstring, not by cron.next_after: UTC runs in
    stretches of one offset, each showing a span of wall clock (`shown`: all so far); a stretch fires
    at the times named in its span less those shown before (a repeated time fires at its first pass,
    a skipped one is in no span), each at most five (local) years after the one before."""
    schedule, stretches = cron.parse(expr), _offsets(tz)
    start = after.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
    year, fires, shown = after.astimezone(cron.zone(tz)).year, [], dt.datetime.min
    for (since, offset), (until, _) in zip(stretches, (*stretches[1:], (SPAN[1], None)), strict=True):
        low, high = max(since, start).replace(tzinfo=None) + offset, until.replace(tzinfo=None) + offset
        for wall in _wall_times(schedule, max(low, shown), high) if until > start else ():
            if wall.year > year + cron.YEARS_AHEAD:
                return fires
            fires.append(_stamp((wall - offset).replace(tzinfo=UTC)))
            if len(fires) == n:
                return fires
            year = wall.year
        shown = max(shown, high)
    assert year + cron.YEARS_AHEAD < SPAN[1].year, "the search ran past SPAN"
    return fires


@pytest.fixture(scope="module")
def split(robfig) -> tuple[list, list]:
    """[(expr, tz, after, answer, mine)] twice: away from, and within a day of, a change of offset."""
    agreeing, around, cases = [], [], corpus()
    for (expr, tz, after), answer in zip(cases, robfig([(e, z, at, N) for e, z, at in cases]), strict=True):
        try:
            mine: dict = {"next": ours(expr, tz, after, N)}
        except cron.CronError as e:
            mine = {"error": str(e)}
        last = max([dt.datetime.fromisoformat(f) for f in answer.get("next", []) + mine.get("next", [])] + [after])
        if any(len(x.get("next", [])) < N for x in (answer, mine) if "error" not in x):
            last += dt.timedelta(days=366 * (cron.YEARS_AHEAD + 1))  # searched up to the horizon
        changes = any(after - DAY <= since <= last + DAY for since, _ in _offsets(tz)[1:])
        (around if changes and "error" not in mine else agreeing).append((expr, tz, after, answer, mine))
    return agreeing, around


def test_away_from_a_clock_change_fire_times_are_robfigs(split):
    agreeing, around = split
    assert len(agreeing) >= AGREEING and len(around) >= 1870, (len(agreeing), len(around))
    mismatches = [f"{expr!r} {tz} after {_stamp(after)}: ours {mine}, robfig {answer}"
                  for expr, tz, after, answer, mine in agreeing
                  if ("error" in answer) != ("error" in mine) or answer.get("next") != mine.get("next")]
    assert not mismatches, (f"{len(mismatches)} of {len(agreeing)} cases away from a clock change differ "
                            "from robfig/cron v3.0.1, e.g.\n" + "\n".join(mismatches[:30]))


def test_around_a_clock_change_fire_times_are_the_wall_clocks(split):
    """Each of ours strictly after the last, a first pass of a time the expression names; all the oracle's."""
    wrong = []
    for expr, tz, after, _, mine in split[1]:
        cr, zone, fires = cron.parse(expr), cron.zone(tz), [dt.datetime.fromisoformat(f) for f in mine["next"]]
        case = f"{expr!r} {tz} after {_stamp(after)}: ours {mine['next']}"
        if [after, *fires] != sorted(set([after, *fires])):
            wrong.append(f"{case}, not each strictly after the last")
        for t in (fire.astimezone(zone) for fire in fires):
            if t.fold or t.second or t.minute not in cr.minutes or t.hour not in cr.hours or not _day(cr, t.date()):
                wrong.append(f"{case}: {t} is {'a second pass' if t.fold else 'not named'}")
        if mine["next"] != (expected := oracle(expr, tz, after, N)):
            wrong.append(f"{case}, the wall clock's {expected}")
    assert not wrong, f"{len(wrong)} faults in {len(split[1])} cases around a clock change:\n" + "\n".join(wrong[:30])


def test_a_schedule_that_never_fires_within_five_years(robfig):
    after = dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert robfig([(NEVER, "Europe/Berlin", after, 3)]) == [{"next": []}]
    assert ours(NEVER, "Europe/Berlin", after, 3) == []
    # and one that fires in leap years only
    assert robfig([("0 0 29 2 *", "UTC", after, 1)]) == [{"next": ["2028-02-29T00:00:00Z"]}]


def test_robfig_accepts_every_expression_we_accept(robfig):
    accepted = []
    for expr in sorted({e for e, _, _ in corpus()}):
        try:
            cron.parse(expr)
        except cron.CronError:
            continue
        accepted.append(expr)
    assert len(accepted) >= 300
    after = dt.datetime(2026, 1, 1, tzinfo=UTC)
    answers = robfig([(e, "UTC", after, 1) for e in accepted])
    refused = {e: a["error"] for e, a in zip(accepted, answers, strict=True) if "error" in a}
    assert not refused, refused


@pytest.fixture(scope="module")
def robfig_on_invalid(robfig):
    after = dt.datetime(2026, 1, 1, tzinfo=UTC)
    return dict(zip(INVALID, robfig([(e, "Europe/Berlin", after, 1) for e in INVALID]), strict=True))


@pytest.mark.parametrize("expr", INVALID, ids=[repr(e) for e in INVALID])
def test_both_refuse(robfig_on_invalid, expr):
    assert "error" in robfig_on_invalid[expr], f"robfig accepts {expr!r}: {robfig_on_invalid[expr]}"
    with pytest.raises(cron.CronError):
        cron.parse(expr)
