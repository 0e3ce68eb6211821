-- Admin-UI logins. The cookie carries a random secret; only its SHA-256 is kept here,
-- so a copy of the database cannot be used to log in. Each login has its own CSRF
-- secret, which the pages put in their forms.
CREATE TABLE logins (
    hash       BLOB    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    csrf       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX logins_by_expiry ON logins (expires_at);
