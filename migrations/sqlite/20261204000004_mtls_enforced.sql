-- Where a required client certificate is enforced (issue 14, item 3): 'tls' when the
-- handshake refused to go on without one, 'http' when the handshake went on and the HTTP
-- server refused a request without one (nginx's `ssl_verify_client on`). NULL when no
-- certificate is required, and for observations made before this column existed.
ALTER TABLE observations ADD COLUMN mtls_enforced TEXT;
