"""The PostgreSQL schema as numbered migrations, applied by ``aq db upgrade``.

Each migration runs once, in order, in its own transaction, recorded in ``aq_schema_migrations``;
an advisory lock keeps two upgraders from racing. Opening a store only checks the version.
"""

from __future__ import annotations

from typing import Final

#: Advisory lock held by every append transaction: commits are serialized per shard, so
#: positions become visible in order (see docs/postgres.md, "Gap-safe global log").
APPEND_LOCK: Final = 0x41510001
UPGRADE_LOCK: Final = 0x41510002
NOTIFY_CHANNEL: Final = "aq_events"

_APPEND_FUNCTION = """
CREATE OR REPLACE FUNCTION aq_append(
    streams text[], expected integer[], counts integer[], event_ids uuid[], event_types text[],
    schema_versions integer[], payloads bytea[], metadata bytea[]
) RETURNS TABLE (outcome text, new_version integer, last_position bigint)
LANGUAGE plpgsql
-- Every lookup here is by a unique index. Without this, a session's cached plan made while the
-- table was empty scans it whole ever after, turning a 1 ms append into tens of milliseconds.
SET enable_seqscan = off
AS $$
DECLARE
    head bigint;
    pos bigint;
    known_streams text[];
    known_versions integer[];
    existing uuid[];
    acc_first integer[] := '{}';
    acc_count integer[] := '{}';
    acc_version integer[] := '{}';
    acc_position bigint[] := '{}';
    acc_stream text[] := '{}';
    first_event integer := 1;
    slot integer;
    current_version integer;
    slice uuid[];
    found integer;
    found_version integer;
    found_position bigint;
BEGIN
    -- One writer at a time per shard, held to commit: positions are taken and made visible in
    -- order, so a reader of "position > n" can never skip a transaction that commits later.
    PERFORM pg_advisory_xact_lock(__LOCK__);
    SELECT coalesce(max(e.position), 0) INTO head FROM aq_events e;
    SELECT array_agg(u.s), array_agg(coalesce(
               (SELECT max(e.version) FROM aq_events e WHERE e.stream_id = u.s), 0))
      INTO known_streams, known_versions
      FROM (SELECT DISTINCT unnest(streams) AS s) u;
    SELECT array_agg(e.event_id) INTO existing FROM aq_events e WHERE e.event_id = ANY(event_ids);
    pos := head;
    FOR i IN 1 .. coalesce(array_length(streams, 1), 0) LOOP
        slot := array_position(known_streams, streams[i]);
        current_version := known_versions[slot];
        slice := event_ids[first_event : first_event + counts[i] - 1];
        IF existing IS NOT NULL AND slice && existing THEN
            -- A repeat when its first id is recorded on this stream (store/appending.py).
            SELECT count(*) FILTER (WHERE e.event_id = slice[1]), max(e.version), max(e.position)
              INTO found, found_version, found_position
              FROM aq_events e WHERE e.event_id = ANY(slice) AND e.stream_id = streams[i];
            IF found = 1 THEN
                outcome := 'duplicate'; new_version := found_version;
                last_position := found_position;
            ELSE
                outcome := 'ids_reused'; new_version := current_version; last_position := 0;
            END IF;
        ELSIF expected[i] = -1 OR expected[i] = current_version THEN
            acc_first := acc_first || first_event;
            acc_count := acc_count || counts[i];
            acc_version := acc_version || current_version;
            acc_position := acc_position || pos;
            acc_stream := acc_stream || streams[i];
            current_version := current_version + counts[i];
            pos := pos + counts[i];
            known_versions[slot] := current_version;
            outcome := 'ok'; new_version := current_version; last_position := pos;
        ELSE
            outcome := 'conflict'; new_version := current_version; last_position := 0;
        END IF;
        RETURN NEXT;
        first_event := first_event + counts[i];
    END LOOP;
    INSERT INTO aq_events (position, event_id, stream_id, stream_type, version, event_type,
                           schema_version, payload, metadata)
    SELECT r.p0 + g + 1, event_ids[r.f + g], r.s, split_part(r.s, '-', 1), r.v0 + g + 1,
           event_types[r.f + g], schema_versions[r.f + g], payloads[r.f + g], metadata[r.f + g]
      FROM unnest(acc_first, acc_count, acc_version, acc_position, acc_stream)
           AS r(f, n, v0, p0, s),
           LATERAL generate_series(0, r.n - 1) AS g;
    IF pos > head THEN
        PERFORM pg_notify('__CHANNEL__', pos::text);
    END IF;
END
$$;
""".replace("__LOCK__", str(APPEND_LOCK)).replace("__CHANNEL__", NOTIFY_CHANNEL)

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: events, snapshots, the append function.
    """
    CREATE TABLE aq_events (
        position       bigint  PRIMARY KEY,
        event_id       uuid    NOT NULL,
        stream_id      text    NOT NULL,
        stream_type    text    NOT NULL,
        version        integer NOT NULL,
        event_type     text    NOT NULL,
        schema_version integer NOT NULL,
        payload        bytea   NOT NULL,
        metadata       bytea   NOT NULL
    );
    CREATE UNIQUE INDEX aq_events_stream_version ON aq_events (stream_id, version);
    CREATE UNIQUE INDEX aq_events_event_id ON aq_events (event_id);
    CREATE TABLE aq_snapshots (
        stream_id      text    PRIMARY KEY,
        version        integer NOT NULL,
        schema_version integer NOT NULL,
        state          bytea   NOT NULL
    );
    """
    + _APPEND_FUNCTION,
    # 2: named positions (relay checkpoints) beside the log.
    """
    CREATE TABLE aq_checkpoints (
        name     text   PRIMARY KEY,
        position bigint NOT NULL
    );
    """,
    # 3: an append whose first event id is recorded on its stream is a repeat, whatever else it
    # holds (a hand-over's finish attempted again, docs/handover.md).
    _APPEND_FUNCTION,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS aq_schema_migrations (
    version    integer     PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
