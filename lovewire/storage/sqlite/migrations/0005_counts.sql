-- Counts kept up to date by the writes, so that a feed never counts a popular post's
-- likes and comments again: triggers add and take away as rows come and go (deletes
-- cascading from a post or a comment included).
ALTER TABLE pictures ADD COLUMN like_count INTEGER NOT NULL DEFAULT 0;
-- Top-level comments only; replies are counted on their comment.
ALTER TABLE pictures ADD COLUMN comment_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE picture_comments ADD COLUMN reply_count INTEGER NOT NULL DEFAULT 0;

UPDATE pictures SET
    like_count = (SELECT COUNT(*) FROM picture_likes l WHERE l.picture_id = pictures.id),
    comment_count = (SELECT COUNT(*) FROM picture_comments c
                     WHERE c.picture_id = pictures.id AND c.parent_id IS NULL);
UPDATE picture_comments SET
    reply_count = (SELECT COUNT(*) FROM picture_comments r WHERE r.parent_id = picture_comments.id)
    WHERE parent_id IS NULL;

CREATE TRIGGER picture_likes_count_insert AFTER INSERT ON picture_likes BEGIN
    UPDATE pictures SET like_count = like_count + 1 WHERE id = NEW.picture_id;
END;
CREATE TRIGGER picture_likes_count_delete AFTER DELETE ON picture_likes BEGIN
    UPDATE pictures SET like_count = like_count - 1 WHERE id = OLD.picture_id;
END;
CREATE TRIGGER picture_comments_count_insert AFTER INSERT ON picture_comments BEGIN
    UPDATE pictures SET comment_count = comment_count + 1
        WHERE NEW.parent_id IS NULL AND id = NEW.picture_id;
    UPDATE picture_comments SET reply_count = reply_count + 1 WHERE id = NEW.parent_id;
END;
CREATE TRIGGER picture_comments_count_delete AFTER DELETE ON picture_comments BEGIN
    UPDATE pictures SET comment_count = comment_count - 1
        WHERE OLD.parent_id IS NULL AND id = OLD.picture_id;
    UPDATE picture_comments SET reply_count = reply_count - 1 WHERE id = OLD.parent_id;
END;
