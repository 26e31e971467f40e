"""The AQL the ArangoDB backend sends, and the indexes it creates for it.

No query reads more than its answer: lists walk the `started_at` indexes from the page's
start, the waiting queues come from the slot-wait indexes best first, totals and gauges from
the counter documents (never a COUNT over the queues).
"""

LIST_QUERY = (
    "FOR q IN @@col"
    " FILTER (@status == null OR q.status == @status) AND (@symbol == null OR q.symbol == @symbol)"
    " FILTER @at == null OR q.started_at < @at OR (q.started_at == @at AND q._key > @key)"
    " SORT q.started_at DESC, q._key ASC LIMIT @offset, @limit RETURN q"
)
# A write with new facts changes the counters by the difference between the facts stored
# before and after it, in the same query: one transaction, whoever the writer is. Its coverage
# entries (facts.v) that changed are written to the coverage collection, keyed by their id, in
# the same query too; nothing removes them (the archive keeps its queues' history there).
# Nothing (no row) when the key is in the archive: a queue id is used once, hot or archived.
# The old entries by id (ZIP): one lookup per new entry, not a scan of the old ones.
COVERED = (
    " LET covered = (LET old = ZIP(doc.old_v[*].id, doc.old_v) FOR e IN doc.new_v FILTER old[e.id] != e"
    " UPSERT {_key: e.id} INSERT MERGE(e, {_key: e.id}) REPLACE MERGE(e, {_key: e.id}) IN @@coverage RETURN 1)"
)
CREATE_QUERY = (
    "FOR archived IN [DOCUMENT(@archive, @doc._key)] FILTER archived == null"
    " LET doc = FIRST(INSERT @doc INTO @@col"
    " RETURN {rev: NEW._rev, old: {}, new: NEW.facts.c, old_v: [], new_v: NEW.facts.v || []})"
    " LET counted = (FOR name IN ATTRIBUTES(doc.new) LET n = doc.new[name] FILTER n != 0"
    " UPSERT {_key: name} INSERT {_key: name, n: n} UPDATE {n: OLD.n + n} IN @@counters RETURN 1)"
    + COVERED +
    " RETURN doc.rev"
)
# @extra: more to add, e.g. {RECOUNT: 1} for a document read without facts.
REPLACE_QUERY = (
    "LET doc = FIRST(REPLACE @doc IN @@col OPTIONS {ignoreRevs: false}"
    " RETURN {rev: NEW._rev, old: OLD.facts.c || {}, new: NEW.facts.c,"
    " old_v: OLD.facts.v || [], new_v: NEW.facts.v || []})"
    " LET counted = (FOR name IN UNION_DISTINCT(ATTRIBUTES(doc.old), ATTRIBUTES(doc.new), ATTRIBUTES(@extra))"
    " LET n = (doc.new[name] || 0) - (doc.old[name] || 0) + (@extra[name] || 0) FILTER n != 0"
    " UPSERT {_key: name} INSERT {_key: name, n: n} UPDATE {n: OLD.n + n} IN @@counters RETURN 1)"
    + COVERED +
    " RETURN doc.rev"
)
COUNTERS_QUERY = "FOR c IN @@counters FILTER STARTS_WITH(c._key, @prefix) AND c.n != 0 RETURN [c._key, c.n]"
# Best first: the sparse index on facts.r gives the order (each rank is unique); a decision for
# one target walks it and stops at the first queues waiting for that target (it reads the
# waiting queues ranked before them: the backlog ahead, never the history).
WAITING_QUERY = "FOR q IN @@col FILTER q.facts.r != null SORT q.facts.r LIMIT @limit RETURN [q._key, q.facts.r]"
WAITING_FOR_QUERY = (
    "FOR q IN @@col FILTER q.facts.r != null SORT q.facts.r FILTER @target IN q.facts.w LIMIT @limit"
    " RETURN [q._key, q.facts.r]"
)
# Of the facts, the overlap check's part only: the coverage entries make them large.
ACTIVE_QUERY = (
    "FOR q IN @@col FILTER q.symbol == @symbol AND q.status IN @active AND q.facts != null"
    " RETURN [q._key, {t: q.facts.t, l: q.facts.l}]"
)
# A series' entries by first day, through the coverage index (COVERAGE_INDEXES).
COVERAGE_QUERY = (
    "FOR e IN @@coverage FILTER e.s == @series AND e.f >= @first AND e.f <= @last"
    " SORT e.f, e.q, e.k RETURN UNSET(e, \"_key\", \"_id\", \"_rev\")"
)
DATASET_QUERY = "FOR q IN @@col FILTER @name IN q.facts.d[*] LIMIT 1 RETURN 1"
# Without facts (null sorts first) or with facts of an older format: from the index on facts.x.
UNINDEXED_QUERY = "FOR q IN @@col FILTER q.facts.x < @format LIMIT @limit RETURN q"
ENDED_QUERY = (
    "FOR q IN @@col FILTER q.facts.e != null AND q.facts.e < @before SORT q.facts.e LIMIT @limit RETURN q"
)
# Out of the hot collection: its counters go down, the archive's ("a:" + name) up.
REMOVE_QUERY = (
    "LET old = FIRST(REMOVE {_key: @key, _rev: @rev} IN @@col OPTIONS {ignoreRevs: false}"
    " RETURN OLD.facts.c || {})"
    " LET counted = (FOR name IN ATTRIBUTES(old) LET n = old[name] FILTER n != 0"
    " FOR change IN (name == \"q\" OR STARTS_WITH(name, \"q.\") OR STARTS_WITH(name, \"s.\")"
    " ? [[name, -n], [CONCAT(\"a:\", name), n]] : [[name, -n]])"
    " UPSERT {_key: change[0]} INSERT {_key: change[0], n: change[1]} UPDATE {n: OLD.n + change[1]}"
    " IN @@counters RETURN 1)"
    " RETURN 1"
)
# The hot counters from what is stored, for `recount` (one transaction, exclusive on the
# queues). The archive's ("a:") are exact by construction (REMOVE_QUERY moves each queue's own).
SUM_QUERY = (
    "FOR q IN @@col FILTER IS_OBJECT(q.facts.c) FOR name IN ATTRIBUTES(q.facts.c)"
    " COLLECT counter = name AGGREGATE n = SUM(q.facts.c[name]) RETURN [counter, n]"
)
CLEAR_QUERY = "FOR c IN @@counters FILTER NOT STARTS_WITH(c._key, \"a:\") REMOVE c IN @@counters"
PUT_QUERY = "FOR row IN @rows INSERT {_key: row[0], n: row[1]} INTO @@counters"
QUERIES = (LIST_QUERY, CREATE_QUERY, REPLACE_QUERY, COUNTERS_QUERY, WAITING_QUERY, WAITING_FOR_QUERY, ACTIVE_QUERY,
           DATASET_QUERY, UNINDEXED_QUERY, ENDED_QUERY, REMOVE_QUERY, SUM_QUERY, CLEAR_QUERY, PUT_QUERY,
           COVERAGE_QUERY)
INDEXES = (
    {"type": "persistent", "fields": ["started_at"]},
    {"type": "persistent", "fields": ["status", "started_at"]},
    {"type": "persistent", "fields": ["symbol", "started_at"]},
    {"type": "persistent", "fields": ["symbol", "status"]},
    {"type": "persistent", "fields": ["facts.r"], "sparse": True},
    {"type": "persistent", "fields": ["facts.e"], "sparse": True},
    {"type": "persistent", "fields": ["facts.d[*]"]},
    {"type": "persistent", "fields": ["facts.x"]},  # the facts' format (null: none): finds the outdated
)
ARCHIVE_INDEXES = INDEXES[:3]  # what a listing of the archive walks
COVERAGE_INDEXES = ({"type": "persistent", "fields": ["s", "f"]},)
