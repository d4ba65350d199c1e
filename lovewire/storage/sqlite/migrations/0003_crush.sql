-- Secret crushes (4.3), their matches and notices, and pending phone number changes (4.5).
CREATE TABLE crushes (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    crush_tel  TEXT    NOT NULL,
    words      TEXT    NOT NULL DEFAULT '',
    created_ts INTEGER NOT NULL,
    -- Start of the 90 days within which an unmatched crush must match or expire.
    since_ts   INTEGER NOT NULL,
    UNIQUE (user_id, crush_tel)
);
CREATE INDEX crushes_tel ON crushes(crush_tel);

-- A match joins two crushes. Each crush is in at most one match and each pair of users
-- matches at most once: two racing adds can never both create one.
CREATE TABLE crush_matches (
    low_user   INTEGER NOT NULL,
    high_user  INTEGER NOT NULL,
    low_crush  INTEGER NOT NULL UNIQUE REFERENCES crushes(id) ON DELETE CASCADE,
    high_crush INTEGER NOT NULL UNIQUE REFERENCES crushes(id) ON DELETE CASCADE,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (low_user, high_user),
    CHECK (low_user < high_user)
);

-- Every tel a user added, kept after removal: at most 9 new tels in 30 days.
CREATE TABLE crush_adds (
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    crush_tel TEXT    NOT NULL,
    ts        INTEGER NOT NULL
);
CREATE INDEX crush_adds_user ON crush_adds(user_id, ts);

-- When the holder of a tel was last told anonymously of an admirer's crush (once a day).
CREATE TABLE crush_notices (
    admirer_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    crush_tel  TEXT    NOT NULL,
    ts         INTEGER NOT NULL,
    PRIMARY KEY (admirer_id, crush_tel)
) WITHOUT ROWID;

-- The pending phone number change of a user; its codes live in sms_codes.
CREATE TABLE tel_changes (
    user_id    INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    new_tel    TEXT    NOT NULL,
    old_tel    TEXT    NOT NULL,
    created_ts INTEGER NOT NULL
);
