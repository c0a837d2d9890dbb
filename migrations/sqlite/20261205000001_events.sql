-- Change events (issue 16): the outbox the `events` role publishes to NATS JetStream.
-- Each row is written in the transaction of the change it describes (docs/events.md).
-- `seq` orders the outbox; `event_id` (32 lowercase hex digits, 128 random bits) is the
-- event's `id` and its `Nats-Msg-Id`, fixed when the row is written so that publishing it
-- again is recognised by JetStream's duplicate window. `data` is the entity (JSON text):
-- the event's fields besides id, kind and at. `published_at` is set once JetStream
-- acknowledged it; published rows are pruned after `events.retention`. Times are Unix
-- seconds.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    event_id     TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    data         TEXT    NOT NULL,
    published_at INTEGER
);
CREATE INDEX events_pending ON events (seq) WHERE published_at IS NULL;
CREATE INDEX events_published ON events (published_at) WHERE published_at IS NOT NULL;
