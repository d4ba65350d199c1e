-- Counts kept up to date by the writes, so that a feed never counts a popular post's
-- likes and comments again: triggers add and take away as rows come and go (deletes
-- cascading from a post or a comment included). The UPDATE of the post's row also makes
-- concurrent likes of one post take turns, so each reads the true count after its own.
ALTER TABLE pictures ADD COLUMN like_count BIGINT NOT NULL DEFAULT 0;
-- Top-level comments only; replies are counted on their comment.
ALTER TABLE pictures ADD COLUMN comment_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE picture_comments ADD COLUMN reply_count BIGINT NOT NULL DEFAULT 0;

UPDATE pictures p SET
    like_count = (SELECT COUNT(*) FROM picture_likes l WHERE l.picture_id = p.id),
    comment_count = (SELECT COUNT(*) FROM picture_comments c
                     WHERE c.picture_id = p.id AND c.parent_id IS NULL);
UPDATE picture_comments c SET
    reply_count = (SELECT COUNT(*) FROM picture_comments r WHERE r.parent_id = c.id)
    WHERE c.parent_id IS NULL;

CREATE FUNCTION lovewire_count_likes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE pictures SET like_count = like_count + 1 WHERE id = NEW.picture_id;
    ELSE
        UPDATE pictures SET like_count = like_count - 1 WHERE id = OLD.picture_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER picture_likes_count AFTER INSERT OR DELETE ON picture_likes
    FOR EACH ROW EXECUTE FUNCTION lovewire_count_likes();

CREATE FUNCTION lovewire_count_comments() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.parent_id IS NULL THEN
            UPDATE pictures SET comment_count = comment_count + 1 WHERE id = NEW.picture_id;
        ELSE
            UPDATE picture_comments SET reply_count = reply_count + 1 WHERE id = NEW.parent_id;
        END IF;
    ELSIF OLD.parent_id IS NULL THEN
        UPDATE pictures SET comment_count = comment_count - 1 WHERE id = OLD.picture_id;
    ELSE
        UPDATE picture_comments SET reply_count = reply_count - 1 WHERE id = OLD.parent_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER picture_comments_count AFTER INSERT OR DELETE ON picture_comments
    FOR EACH ROW EXECUTE FUNCTION lovewire_count_comments();
