-- Endpoints are updated several times a day each (every report sets last_seen, every probe
-- its schedule): room left on each page lets the report's update stay on the page (a HOT
-- update: no new index entries), so the table's indexes churn less and vacuum keeps up.
ALTER TABLE endpoints SET (fillfactor = 80);
