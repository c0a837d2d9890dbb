-- Where the name of a named endpoint came from (issue 14, item 2).
--
-- `sni_source` of an endpoint `(address, port, sni)`: `certificate` (a DNS name of a leaf
-- it served), `config` (a static target's host name or names), `dns`, `report` (named by
-- a report), or a name the service guessed: `host_name` (the reporting workload's host
-- name) and `ptr` (the PTR name of the address). NULL for endpoints without SNI, and for
-- named endpoints whose source is not known (kept as not guessed). A guessed name never
-- raises `hostname_mismatch`, and is retired when it selects the socket's default
-- certificate (docs/probing.md).
ALTER TABLE endpoints ADD COLUMN sni_source TEXT;

-- Named endpoints created before this column: the host's own name is known to be a guess.
UPDATE endpoints SET sni_source = 'host_name'
WHERE sni <> '' AND host_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM hosts h WHERE h.id = endpoints.host_id AND lower(h.hostname) = endpoints.sni);
