-- Rollups of the operators' trends: a settled day or hour is computed from the event log
-- once and kept (the log is append-only, so it never changes).
CREATE TABLE trend_status_days (
    day             BIGINT  PRIMARY KEY,
    connected       BIGINT  NOT NULL,
    needs_reconnect BIGINT  NOT NULL,
    disconnected    BIGINT  NOT NULL
);
CREATE TABLE trend_refresh_hours (
    hour      BIGINT  PRIMARY KEY,
    ok        BIGINT  NOT NULL,
    transient BIGINT  NOT NULL,
    rejected  BIGINT  NOT NULL
);
-- Events by kind and time (refreshes per hour, status changes before a day), covering.
CREATE INDEX connection_events_kind_time ON connection_events (kind, created_at, connection_id);
-- Today's counts: connections that ever connected, by status.
CREATE INDEX connections_status_connected ON connections (status, connected_at);
