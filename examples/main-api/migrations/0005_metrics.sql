-- GET /internal/metrics (src/metrics.rs): what it reads, each through an
-- index, so that its cost does not grow with the audit log's age.

-- The commands received in the last 24 hours, by hour and outcome: a range
-- of this index, which covers both columns (no row of the table is read).
CREATE INDEX sync_audit_received_at ON sync_audit (received_at, outcome);

-- The oldest live pending row: the first entry of this index.
CREATE INDEX users_pending_created_at ON users (created_at)
  WHERE sync_status = 'pending' AND deleted_at IS NULL;
