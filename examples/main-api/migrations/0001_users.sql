-- The application's own user table, as it is before the sync exists.
-- Times are RFC 3339 UTC with milliseconds (2024-01-05T04:46:40.000Z), the
-- format of the sync contract, so they sort correctly as text.
CREATE TABLE users (
  id         TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(16)))),
  email      TEXT COLLATE NOCASE,
  first_name TEXT,
  last_name  TEXT,
  username   TEXT,
  image_url  TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  deleted_at TEXT
);

-- One live account per email; a soft-deleted row keeps its email without
-- blocking a new account.
CREATE UNIQUE INDEX users_email_live ON users (email) WHERE deleted_at IS NULL;
