-- The last fleet overview an API process computed (issue 19), as JSON: the first dashboard
-- after a start answers with it at once while a fresh one is computed in the background
-- (a pass over every active endpoint: seconds at fleet size). One row, rewritten.
CREATE TABLE overview_snapshot (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    body TEXT    NOT NULL
);
