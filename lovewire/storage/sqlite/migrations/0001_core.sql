-- Users, tokens, SMS codes and the send log, and the stored pushes of section 5.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    tel           TEXT    NOT NULL UNIQUE,
    nickname      TEXT    NOT NULL,
    sex           INTEGER NOT NULL,
    birthday      TEXT    NOT NULL,
    signature     TEXT    NOT NULL DEFAULT '',
    avatar        TEXT    NOT NULL DEFAULT '',
    crush_receive INTEGER NOT NULL DEFAULT 1,
    push_seq      INTEGER NOT NULL DEFAULT 0,
    acked_seq     INTEGER NOT NULL DEFAULT 0,
    created_ts    INTEGER NOT NULL
);

CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    hash       BLOB    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL CHECK (kind IN ('session', 'ticket')),
    user_id    INTEGER REFERENCES users(id) ON DELETE CASCADE,
    tel        TEXT,
    expires_ts INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0,
    created_ts INTEGER NOT NULL
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE sms_codes (
    id         INTEGER PRIMARY KEY,
    tel        TEXT    NOT NULL,
    purpose    TEXT    NOT NULL,
    user_id    INTEGER,
    code_hash  BLOB    NOT NULL,
    expires_ts INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    used       INTEGER NOT NULL DEFAULT 0,
    created_ts INTEGER NOT NULL
);
CREATE INDEX sms_codes_tel ON sms_codes(tel, purpose, created_ts);

CREATE TABLE sms_sends (
    id   INTEGER PRIMARY KEY,
    tel  TEXT    NOT NULL,
    addr TEXT    NOT NULL,
    ts   INTEGER NOT NULL
);
CREATE INDEX sms_sends_tel ON sms_sends(tel, ts);
CREATE INDEX sms_sends_addr ON sms_sends(addr, ts);
CREATE INDEX sms_sends_ts ON sms_sends(ts);

CREATE TABLE pushes (
    user_id    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    created_ts INTEGER NOT NULL,
    delivered  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
CREATE INDEX pushes_created ON pushes(created_ts);
