-- Per-container tags (issue 14, item 8).
--
-- An endpoint's app, env and owner are now its socket's own tags (its container's labels
-- or annotations, read by the agent from the container runtime's state) over its host's.
-- Ownership rules may also match the Kubernetes namespace and the container's name, so
-- those two are kept on the endpoint too. NULL: the socket has none (a host socket, or a
-- container whose runtime state the agent could not read).
ALTER TABLE endpoints ADD COLUMN namespace TEXT;
ALTER TABLE endpoints ADD COLUMN container_name TEXT;
