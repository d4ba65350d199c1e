-- A user's conversations, found by either of its two users. The conversation list reads
-- them through both indexes at once (an OR) and sorts them by last_ts after, so last_ts
-- in these indexes was never used, and every message that moved it rewrote both.
DROP INDEX conversations_low;
DROP INDEX conversations_high;
CREATE INDEX conversations_low ON conversations(low_user);
CREATE INDEX conversations_high ON conversations(high_user);
