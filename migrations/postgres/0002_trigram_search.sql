-- Substring search on the operator dashboard through trigram indexes, where the server
-- has pg_trgm and lets us enable it; without it the search scans (and still works).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_trgm not enabled (no privilege); operator search will scan';
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX IF NOT EXISTS merchants_email_trgm ON merchants USING gin (email gin_trgm_ops);
        CREATE INDEX IF NOT EXISTS connections_business_name_trgm ON connections USING gin (LOWER(business_name) gin_trgm_ops);
    END IF;
END
$$;
