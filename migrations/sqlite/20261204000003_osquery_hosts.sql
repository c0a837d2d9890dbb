-- osquery nodes (issue 14, item 7).
--
-- What is kept of an enrolled osquery node between its logger posts, whose queries
-- (`interface_addresses`, `listening_ports`) arrive in different posts: its latest
-- interface addresses (at most 256), the wildcard listeners of its host namespace (at
-- most 4096), that namespace, and its tags from osquery's decorations. One JSON document
-- per node (`certfleet_model::OsqueryHost`), merged in one write transaction, so that any
-- API replica can take a node's next post and a restart loses nothing.
CREATE TABLE osquery_hosts (
    host_key   TEXT    PRIMARY KEY,
    state      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
