-- People who use the admin UI. Passwords are kept only as Argon2id hashes (PHC strings).
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'analyst')),
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);
