-- PostgreSQL's migration 9 spreads the dashboard's counters over sixteen rows per key, so
-- that concurrent changes do not wait on one counter row's lock. SQLite has one writer at
-- a time anyway: its counters stay as they are (readers sum rows on both engines).
SELECT 1;
