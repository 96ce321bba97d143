-- Pages of rows for a re-sync run (GET /internal/users): keyset pages in
-- the order (clerk_id IS NULL, clerk_id, id), each filter a range of one
-- index read in order, so that a page costs its own rows whatever the size
-- of the table.

-- Rows of one sync_status in clerk_id order. Its prefix is the index
-- 0002 made on sync_status alone, which it replaces.
CREATE INDEX users_status_clerk_id ON users (sync_status, clerk_id);
DROP INDEX users_sync_status;

-- Deleted rows in clerk_id order (`live=false`).
CREATE INDEX users_deleted_clerk_id ON users (clerk_id) WHERE deleted_at IS NOT NULL;

-- Rows with no Clerk id yet (the application's signups) in id order.
CREATE INDEX users_unlinked ON users (id) WHERE clerk_id IS NULL;
