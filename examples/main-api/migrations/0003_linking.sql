-- Linking and conflicts (issue 10): a signup is claimed by one rule decided
-- when it is created; a Clerk user's data is kept apart from the row that
-- shows it, so that every delivery order ends in the same table.
--
-- The `users` rows that hold Clerk data are rendered from `clerk_users`
-- (each Clerk user's newest data) and `link_claims` (who claimed which
-- signup) by the statements in src/plan.rs; never edit those columns of a
-- linked row by hand: the next command for the user renders them again.

-- The application's signups (`POST /internal/users`): how the row is found
-- by its Clerk user, and the data it was created with (shown again if it
-- ever loses its Clerk user). `id` is the `users.id` of the row.
CREATE TABLE signups (
  id         TEXT PRIMARY KEY NOT NULL,
  -- 'external_id': claimed by the Clerk user whose external_id is `id`;
  -- 'email': claimed by the Clerk user created with `email` who verified it.
  link_by    TEXT NOT NULL CHECK (link_by IN ('external_id', 'email')),
  email      TEXT NOT NULL COLLATE NOCASE,
  first_name TEXT,
  last_name  TEXT,
  username   TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX signups_email ON signups (email);

-- Which Clerk user claimed which signup by its rule. Only ever grows, and
-- each column only moves one way (claimed_at down, the flags up), so the
-- claims, and the links decided from them, do not depend on delivery order.
CREATE TABLE link_claims (
  signup_id    TEXT NOT NULL,
  clerk_id     TEXT NOT NULL,
  -- The earliest time of the claim: the version that carried the external
  -- id, or the Clerk user's created_at for the email rule.
  claimed_at   TEXT NOT NULL,
  -- Email rule: the user.created event carried the signup's email (always
  -- 1 for the external_id rule).
  created_with INTEGER NOT NULL CHECK (created_with IN (0, 1)),
  -- Email rule: some version carried it verified (always 1 for external_id).
  verified     INTEGER NOT NULL CHECK (verified IN (0, 1)),
  PRIMARY KEY (signup_id, clerk_id)
);
CREATE INDEX link_claims_clerk_id ON link_claims (clerk_id, claimed_at, signup_id);

-- Clerk's newest data for each Clerk user, deleted ones included: the
-- greatest (version, data_key, operation_id) received. `users` rows show it.
CREATE TABLE clerk_users (
  clerk_id     TEXT PRIMARY KEY NOT NULL,
  email        TEXT COLLATE NOCASE,
  first_name   TEXT,
  last_name    TEXT,
  username     TEXT,
  image_url    TEXT,
  created_at   TEXT,
  version      TEXT NOT NULL,
  data_key     TEXT NOT NULL,
  operation_id TEXT NOT NULL
);
-- Who holds an address: the live user whose newest data has it, newest first.
CREATE INDEX clerk_users_email ON clerk_users (email, version, clerk_id);

-- Commands that failed and have not been taken since: a row is `failed`
-- while its Clerk user has one. Applying the operation removes it.
CREATE TABLE sync_failures (
  operation_id TEXT PRIMARY KEY NOT NULL,
  clerk_id     TEXT NOT NULL,
  error        TEXT NOT NULL,
  failed_at    TEXT NOT NULL
);
CREATE INDEX sync_failures_clerk_id ON sync_failures (clerk_id, failed_at);

-- Rows holding an address back (a signup in conflict, or an older Clerk
-- user's row while a newer one holds its address): the only `failed` rows a
-- command may free, found without reading the others.
CREATE INDEX users_email_held_back ON users (clerk_id) WHERE sync_status = 'failed' AND email IS NULL;

-- Rows from before this migration. Rows not linked yet were created by the
-- application's signup and told to link by external_id (the old README);
-- they keep waiting for it. Rows already linked with data cannot be told
-- apart from rows the sync created, so each is pinned to its Clerk user (a
-- claim no later claim precedes): none is ever removed or given to another
-- user. A failure placeholder (a Clerk id, no email, no Clerk data) is the
-- sync's own row and is replaced like any other.
INSERT INTO signups (id, link_by, email, first_name, last_name, username, created_at)
SELECT id, 'external_id', COALESCE(email, ''), first_name, last_name, username, created_at
FROM users
WHERE (clerk_id IS NULL AND deleted_at IS NULL)
   OR (clerk_id IS NOT NULL AND (email IS NOT NULL OR clerk_updated_at IS NOT NULL));

INSERT INTO link_claims (signup_id, clerk_id, claimed_at, created_with, verified)
SELECT u.id, u.clerk_id, '0000-01-01T00:00:00.000Z', 1, 1
FROM users u JOIN signups s ON s.id = u.id WHERE u.clerk_id IS NOT NULL;

INSERT INTO clerk_users (clerk_id, email, first_name, last_name, username, image_url,
                         created_at, version, data_key, operation_id)
SELECT clerk_id, email, first_name, last_name, username, image_url,
       created_at, clerk_updated_at, '', COALESCE(last_operation_id, '')
FROM users WHERE clerk_id IS NOT NULL AND clerk_updated_at IS NOT NULL;
