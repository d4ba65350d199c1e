-- 三天 (4.6): conversations opened by matches, and their messages.
-- AUTOINCREMENT: an id is never given again after the retention sweeper deleted its row.
CREATE TABLE conversations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    low_user   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    high_user  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    opened_ts  INTEGER NOT NULL,
    expire_ts  INTEGER NOT NULL,
    low_kept   INTEGER NOT NULL DEFAULT 0,
    high_kept  INTEGER NOT NULL DEFAULT 0,
    -- NULL while open; then when and why it ended ('closed' or 'expired').
    ended_ts   INTEGER,
    end_reason TEXT,
    -- The latest activity (the opening or the newest message): the list's order.
    last_ts    INTEGER NOT NULL,
    -- The newest message id each side has read (0: none).
    low_read   INTEGER NOT NULL DEFAULT 0,
    high_read  INTEGER NOT NULL DEFAULT 0,
    CHECK (low_user < high_user)
);
-- At most one open conversation per pair.
CREATE UNIQUE INDEX conversations_open_pair ON conversations(low_user, high_user)
    WHERE ended_ts IS NULL;
CREATE INDEX conversations_low ON conversations(low_user, last_ts);
CREATE INDEX conversations_high ON conversations(high_user, last_ts);
CREATE INDEX conversations_expiry ON conversations(expire_ts) WHERE ended_ts IS NULL;
CREATE INDEX conversations_ended ON conversations(ended_ts) WHERE ended_ts IS NOT NULL;

CREATE TABLE chat_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    msg             TEXT    NOT NULL DEFAULT '',
    -- A stored file (ab/<sha256>.<ext>) shared like a post's, '' for none.
    picture         TEXT    NOT NULL DEFAULT '',
    client_msg_id   TEXT,
    created_ts      INTEGER NOT NULL
);
CREATE INDEX chat_messages_conversation ON chat_messages(conversation_id, id);
CREATE INDEX chat_messages_picture ON chat_messages(picture) WHERE picture <> '';
-- A sender's messages of the last minute (LOVEWIRE_MESSAGES_PER_MINUTE).
CREATE INDEX chat_messages_sender ON chat_messages(sender_id, created_ts);
CREATE UNIQUE INDEX chat_messages_client_msg ON chat_messages(sender_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;
