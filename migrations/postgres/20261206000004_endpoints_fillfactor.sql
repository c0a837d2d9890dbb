-- The initial schema left half of each endpoints page free (fillfactor 50) so that the
-- hourly refresh of last_seen stays a heap-only update. At fleet size that doubled the
-- largest table (3,300,000 endpoints: about 3.9 GB at fillfactor 80 in bench/fleet-day.sh),
-- and with autovacuum keeping up, the room a fifth of each page gives is what the updates
-- between two vacuums need: at SCALE=0.01 the endpoints table (indexes included) was
-- 40.6 MiB on day 2 and 44.3 MiB on day 3 at fillfactor 80, against 43.5 and 47.7 at 50.
-- Existing pages keep their layout until they are rewritten.
ALTER TABLE endpoints SET (fillfactor = 80);
