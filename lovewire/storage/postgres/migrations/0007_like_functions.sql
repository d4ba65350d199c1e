-- A like and an unlike are one call each: one round trip from the server instead of
-- five or so. The picture's row is locked first (FOR NO KEY UPDATE: the foreign keys of
-- likes and comments, which take KEY SHARE, are not held up), so likes and unlikes of one
-- picture take turns in every process; each statement after it reads a fresh snapshot
-- (a VOLATILE function under READ COMMITTED), so it sees what the unit before it
-- committed, and the count read last is the true one right after this write.
CREATE FUNCTION lovewire_like(picture BIGINT, liker BIGINT, now_ts BIGINT,
    OUT picture_found BOOLEAN, OUT added BOOLEAN, OUT likes BIGINT, OUT owner_user BIGINT,
    OUT tell BOOLEAN, OUT liker_nickname TEXT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT p.owner_id INTO owner_user FROM pictures p WHERE p.id = picture FOR NO KEY UPDATE;
    picture_found := FOUND;
    added := FALSE;
    tell := FALSE;
    IF NOT picture_found THEN
        RETURN;
    END IF;
    INSERT INTO picture_likes (picture_id, user_id, created_ts)
        VALUES (picture, liker, now_ts) ON CONFLICT DO NOTHING;
    added := FOUND;
    -- The owner hears of a liker once: unlike and like again pushes nothing new.
    IF owner_user <> liker THEN
        INSERT INTO picture_like_notices (picture_id, user_id)
            VALUES (picture, liker) ON CONFLICT DO NOTHING;
        tell := FOUND;
    END IF;
    -- The trigger of 0005 has counted this like already.
    SELECT p.like_count INTO likes FROM pictures p WHERE p.id = picture;
    SELECT u.nickname INTO liker_nickname FROM users u WHERE u.id = liker;
END $$;

CREATE FUNCTION lovewire_unlike(picture BIGINT, liker BIGINT,
    OUT picture_found BOOLEAN, OUT removed BOOLEAN, OUT likes BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM FROM pictures p WHERE p.id = picture FOR NO KEY UPDATE;
    picture_found := FOUND;
    removed := FALSE;
    IF NOT picture_found THEN
        RETURN;
    END IF;
    DELETE FROM picture_likes l WHERE l.picture_id = picture AND l.user_id = liker;
    removed := FOUND;
    SELECT p.like_count INTO likes FROM pictures p WHERE p.id = picture;
END $$;
