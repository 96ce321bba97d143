-- What clerk-sync adds to the application's database.

-- The design note's four sync columns. SQLite cannot add a UNIQUE column, so
-- clerk_id's uniqueness (and its index) is a unique index.
ALTER TABLE users ADD COLUMN clerk_id TEXT;
CREATE UNIQUE INDEX users_clerk_id ON users (clerk_id);
ALTER TABLE users ADD COLUMN sync_status TEXT NOT NULL DEFAULT 'pending'
  CHECK (sync_status IN ('synced', 'pending', 'failed'));
ALTER TABLE users ADD COLUMN last_sync_attempt TEXT;
ALTER TABLE users ADD COLUMN sync_error TEXT;
CREATE INDEX users_sync_status ON users (sync_status);

-- Clerk's updated_at of the data in the row: the order of upserts. (The
-- row's own updated_at is when the application last changed it.)
ALTER TABLE users ADD COLUMN clerk_updated_at TEXT;
-- The operation that last wrote the row's Clerk data or deleted it.
ALTER TABLE users ADD COLUMN last_operation_id TEXT;

-- Every operation id applied (Svix's message id, the same on every retry),
-- so a redelivered command is recognised and not applied twice.
CREATE TABLE applied_operations (
  operation_id TEXT PRIMARY KEY NOT NULL,
  command      TEXT NOT NULL CHECK (command IN ('upsert_user', 'delete_user')),
  clerk_id     TEXT NOT NULL,
  outcome      TEXT NOT NULL CHECK (outcome IN ('applied', 'stale', 'ignored_deleted')),
  applied_at   TEXT NOT NULL
);

-- Deleted Clerk ids: a late upsert_user for one of them changes nothing.
CREATE TABLE clerk_tombstones (
  clerk_id     TEXT PRIMARY KEY NOT NULL,
  deleted_at   TEXT NOT NULL,
  operation_id TEXT NOT NULL
);

-- One row per command received, whatever became of it.
CREATE TABLE sync_audit (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  received_at  TEXT NOT NULL,
  operation_id TEXT,
  command      TEXT,
  event_type   TEXT,
  clerk_id     TEXT,
  outcome      TEXT NOT NULL
    CHECK (outcome IN ('applied', 'stale', 'ignored_deleted', 'duplicate', 'rejected', 'failed')),
  error        TEXT
);
CREATE INDEX sync_audit_outcome ON sync_audit (outcome, id);
CREATE INDEX sync_audit_clerk_id ON sync_audit (clerk_id, id);
