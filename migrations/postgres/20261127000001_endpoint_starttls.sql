-- A static target may force its STARTTLS protocol ('smtp', 'postgres', ..., or 'none');
-- NULL: chosen by the port. Named endpoints copy it from the endpoint that named them.
ALTER TABLE endpoints ADD COLUMN starttls TEXT;
