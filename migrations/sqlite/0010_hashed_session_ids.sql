-- Sessions (and the OAuth states bound to them) are now keyed by the SHA-256 of the
-- session id, never the cookie's value: a copy of the database opens no session. Sessions
-- stored the old way cannot be told apart from the new and simply end here (everyone logs
-- in once more); authorizations in flight must be started again.
DELETE FROM sessions;
DELETE FROM oauth_states;
