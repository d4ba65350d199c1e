-- Stored pictures, by their content-hash path (`ab/<sha256>.<ext>`): every process of the
-- deployment serves them. The bytes are compressed already: PostgreSQL is not to try again.
CREATE TABLE media (
    path       TEXT   PRIMARY KEY,
    content    BYTEA  NOT NULL,
    created_ts BIGINT NOT NULL
);
ALTER TABLE media ALTER COLUMN content SET STORAGE EXTERNAL;

-- The key login codes are hashed with: one row, made by the first process that needs it,
-- so that a code sent by one process verifies on any other.
CREATE TABLE lovewire_secret (
    id  SMALLINT PRIMARY KEY CHECK (id = 1),
    key BYTEA    NOT NULL
);
