-- Admin-UI logins. The cookie carries a random secret; only its SHA-256 is kept here,
-- so a copy of the database cannot be used to log in. Each login has its own CSRF
-- secret, which the pages put in their forms.
CREATE TABLE logins (
    hash       BYTEA   PRIMARY KEY,
    user_id    BIGINT  NOT NULL REFERENCES users (id),
    csrf       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX logins_by_expiry ON logins (expires_at);
