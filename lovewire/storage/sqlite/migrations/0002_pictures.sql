-- The picture community (3.3, 3.4, 3.5, 4.2): posts, likes, comments and replies.
CREATE TABLE pictures (
    id            INTEGER PRIMARY KEY,
    owner_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The stored file, relative to the media directory: ab/<sha256>.<ext>. Files are
    -- shared by identical pictures, so a file goes only when nothing refers to it.
    path          TEXT    NOT NULL,
    words         TEXT    NOT NULL DEFAULT '',
    client_msg_id TEXT,
    created_ts    INTEGER NOT NULL
);
CREATE INDEX pictures_owner ON pictures(owner_id, id);
CREATE INDEX pictures_path ON pictures(path);
CREATE UNIQUE INDEX pictures_client_msg ON pictures(owner_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- One like per user and picture: the primary key says so.
CREATE TABLE picture_likes (
    picture_id INTEGER NOT NULL REFERENCES pictures(id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_ts INTEGER NOT NULL,
    PRIMARY KEY (picture_id, user_id)
) WITHOUT ROWID;
CREATE INDEX picture_likes_user ON picture_likes(user_id);

-- Likers the owner was already told about: unlike and like again pushes nothing new.
CREATE TABLE picture_like_notices (
    picture_id INTEGER NOT NULL REFERENCES pictures(id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL,
    PRIMARY KEY (picture_id, user_id)
) WITHOUT ROWID;

-- Top-level comments have parent_id NULL; a reply is filed under its top-level comment
-- (parent_id) and remembers the comment it answered (reply_to, which may be a reply).
CREATE TABLE picture_comments (
    id            INTEGER PRIMARY KEY,
    picture_id    INTEGER NOT NULL REFERENCES pictures(id) ON DELETE CASCADE,
    parent_id     INTEGER REFERENCES picture_comments(id) ON DELETE CASCADE,
    reply_to      INTEGER,
    author_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    msg           TEXT    NOT NULL,
    client_msg_id TEXT,
    created_ts    INTEGER NOT NULL
);
CREATE INDEX picture_comments_top ON picture_comments(picture_id, parent_id, id);
CREATE INDEX picture_comments_parent ON picture_comments(parent_id, id);
CREATE UNIQUE INDEX picture_comments_client_msg ON picture_comments(author_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

-- Uploads and comments per user, for the per-hour and per-minute limits (deleting a
-- post or a comment gives no budget back).
CREATE TABLE community_actions (
    user_id INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    ts      INTEGER NOT NULL
);
CREATE INDEX community_actions_user ON community_actions(user_id, kind, ts);

-- Deleting a post checks whether an avatar still uses its file.
CREATE INDEX IF NOT EXISTS users_avatar ON users(avatar);
