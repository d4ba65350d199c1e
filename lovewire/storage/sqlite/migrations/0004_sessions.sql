-- Sessions (issue 7): a per-user session generation. Logout-all and a phone change bump
-- users.token_gen; a session token records the generation it was minted in and is valid
-- only while that is still its user's. Existing tokens and users start at 0: still valid.
ALTER TABLE users ADD COLUMN token_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
-- Tickets are revoked by tel when the account holding that tel ends its sessions.
CREATE INDEX tokens_ticket_tel ON tokens(tel) WHERE kind = 'ticket';
