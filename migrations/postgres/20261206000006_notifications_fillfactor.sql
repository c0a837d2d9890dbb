-- A pending notification is updated two to four times before it is sent: leased, renewed
-- before its digest goes out (and by the heartbeat of a long run), then marked sent. The
-- lease and the renewals change only lease_owner and lease_until, which no index covers,
-- so they can be heap-only updates, but only when the row's page has room for the new
-- version; claims filled pages to the brim, and every renewal then wrote a new entry into
-- each of the table's seven indexes. Half of each page is left free for those versions.
-- Existing pages keep their layout until they are rewritten.
ALTER TABLE notifications SET (fillfactor = 50);
