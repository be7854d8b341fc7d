-- PostgreSQL adds trigram indexes for the operator search here; SQLite scans (fast at
-- this scale, see the README's figures). Kept so both engines share migration numbers.
SELECT 1;
