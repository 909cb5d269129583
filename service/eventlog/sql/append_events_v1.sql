-- append_events(), version 1: a whole append (lock, dedupe, positions, hash chain, insert, head,
-- notify) as one statement, so that it costs the service one round trip instead of six
-- (service/eventlog/append.py). Created by alembic/versions/0006_append_function.py.
--
-- The chain is service/eventlog/chain.py's: hash = sha256(prev || envelope), where the envelope is the
-- JSON array [id, ...]. Only the id depends on the position, so the caller sends each envelope without
-- it ("tail": everything after "[id,") and this function writes "[" id "," in front. Its search path is
-- the one `migrate` ran with, so the service may live in a schema other than public.
--
-- :channel is the NOTIFY channel, service/eventlog/sql/__init__.py's CHANNEL, put in by load_sql().
-- A change to this function is a new file (append_events_v2.sql) and a new migration that loads it:
-- a migration already applied must keep creating what it created.

CREATE FUNCTION append_events(
    p_received_at timestamptz[], p_kind text[], p_event_type text[], p_org_id uuid[],
    p_external_id text[], p_content_type text[], p_body bytea[], p_body_sha256 bytea[],
    p_request_id text[], p_envelope_tail bytea[]
) RETURNS TABLE (event_id bigint, duplicate boolean)
LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
DECLARE
    head_position bigint;
    chain bytea;
    logged_ids bigint[];
    result_ids bigint[] := '{}';
    new_index int[] := '{}';
    new_prev bytea[] := '{}';
    new_hash bytea[] := '{}';
BEGIN
    -- Appends are serialised on the head row, held until commit: positions are gapless and
    -- ascending in commit order, whatever the number of processes.
    SELECT h.position, h.hash INTO head_position, chain FROM event_log_head h FOR UPDATE;
    -- A statement of its own, after the lock: under READ COMMITTED it sees every append that
    -- committed before ours, so a redelivery racing its original is still recognised.
    SELECT array_agg(l.id ORDER BY d.ord) INTO logged_ids
    FROM unnest(p_kind, p_body_sha256) WITH ORDINALITY AS d (kind, body_sha256, ord)
    LEFT JOIN event_log l ON l.kind = d.kind AND l.body_sha256 = d.body_sha256;
    FOR i IN 1 .. coalesce(array_length(p_kind, 1), 0) LOOP
        IF logged_ids[i] IS NOT NULL THEN
            result_ids := result_ids || logged_ids[i];
            CONTINUE;
        END IF;
        head_position := head_position + 1;
        new_index := new_index || i;
        new_prev := new_prev || chain;
        chain := sha256(
            chain || convert_to('[' || head_position || ',', 'UTF8') || p_envelope_tail[i]
        );
        new_hash := new_hash || chain;
        result_ids := result_ids || head_position;
    END LOOP;
    IF array_length(new_index, 1) > 0 THEN
        INSERT INTO event_log (id, received_at, kind, event_type, org_id, external_id, content_type,
                               body, body_sha256, prev_hash, hash, request_id)
        SELECT result_ids[n.i], p_received_at[n.i], p_kind[n.i], p_event_type[n.i], p_org_id[n.i],
               p_external_id[n.i], p_content_type[n.i], p_body[n.i], p_body_sha256[n.i], n.prev,
               n.hash, p_request_id[n.i]
        FROM unnest(new_index, new_prev, new_hash) AS n (i, prev, hash);
        UPDATE event_log_head SET position = head_position, hash = chain;
        PERFORM pg_notify(:channel, head_position::text);
    END IF;
    RETURN QUERY SELECT r.id, r.logged_id IS NOT NULL
        FROM unnest(result_ids, logged_ids) WITH ORDINALITY AS r (id, logged_id, ord)
        ORDER BY r.ord;
END
$$;
