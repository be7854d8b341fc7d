-- A claim of webhook deliveries reads only what it takes: the rows in flight (by status
-- and lease), and each endpoint's next due rows in order (it no longer ranks every
-- pending row, so one endpoint's backlog of thousands costs a claim no more than ten).
CREATE INDEX webhook_deliveries_in_flight ON webhook_deliveries (status, lease_until);
CREATE INDEX webhook_deliveries_endpoint_due ON webhook_deliveries (endpoint_id, status, next_attempt_at, id);
