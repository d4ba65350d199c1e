"""Push ordering for one socket, without I/O: which stored pushes to send, and when.

A socket gets its user's pushes in seq order, each once (section 5), whether they come
live from the hub, from the replay a login owes, or from the store to fill a gap (a push
published ahead of an earlier one: two commits woken together, or another process).
`PushOrder` only keeps the books: it is told what arrived and answers with what to send
now, and with the range of seqs to read from the store when a gap must be filled. The
connection does the reading and the sending (as websockets' `protocol.py` keeps the
protocol apart from `asyncio/connection.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from lovewire.storage.records import StoredPush

__all__ = ["Gap", "PushOrder", "Send"]


class Send(NamedTuple):
    """A push frame to write to the socket now."""

    push: StoredPush
    frame: str
    #: Part of a login's replay, which may go over the socket's queue bound once.
    replay: bool = False


class Gap(NamedTuple):
    """Seqs to read from the store, in (after, upto], before kept pushes can be sent."""

    user_id: int
    after: int
    upto: int


class PushOrder:
    """The push bookkeeping of one socket: its user, the last seq sent, what waits."""

    __slots__ = ("_early", "_floor", "_held", "_known", "user_id")

    def __init__(self) -> None:
        #: The user whose pushes this socket gets; None while it is not logged in.
        self.user_id: int | None = None
        #: The highest seq sent (or skipped for good): nothing at or below it goes out.
        self._floor = 0
        #: Live pushes held while the login's replay is read; None when none is pending.
        self._held: list[tuple[StoredPush, str]] | None = None
        #: Pushes that arrived ahead of an earlier one, by seq.
        self._early: dict[int, tuple[StoredPush, str]] = {}
        #: The highest seq known to be stored (`expect`): what is above the floor is owed.
        self._known = 0

    @property
    def floor(self) -> int:
        """The highest seq sent so far (0 before any)."""
        return self._floor

    def begin(self, user_id: int) -> None:
        """The socket logged in as `user_id`: hold live pushes until `replayed`.

        A login as the same user again keeps the books as they are (a token refresh, or
        another auth_request: what was sent stays sent).
        """
        if user_id == self.user_id:
            return
        self.end()
        self.user_id = user_id
        self._held = []

    def end(self) -> None:
        """The socket logged out (or is gone): forget everything."""
        self.user_id = None
        self._floor = 0
        self._known = 0
        self._held = None
        self._early.clear()

    def live(self, push: StoredPush, frame: str) -> list[Send]:
        """A committed push reached the socket from the hub: what to send now."""
        if push.user_id != self.user_id or push.seq <= self._floor:
            return []
        if self._held is not None:
            self._held.append((push, frame))
            return []
        if push.seq > self._floor + 1:
            self._early[push.seq] = (push, frame)
            return []
        out = [self._advance(push, frame)]
        self._release_early(out)
        return out

    def replayed(
        self, user_id: int, pushes: Iterable[tuple[StoredPush, str]], upto: int
    ) -> list[Send]:
        """The replay owed to the login of `user_id`, read up to seq `upto`: what to send.

        Then the live pushes held meanwhile. Pushes of the replay not given (the read
        failed, or they were pruned) are skipped: the client recovers with `last_seq`.
        Nothing if the socket is no longer that user's.
        """
        if user_id != self.user_id:
            return []
        out = [
            self._advance(push, frame, replay=True)
            for push, frame in pushes
            if push.seq > self._floor
        ]
        self._floor = max(self._floor, upto)
        held, self._held = self._held or [], None
        for push, frame in held:
            out += self.live(push, frame)
        self._release_early(out)
        return out

    def expect(self, upto: int) -> None:
        """The store holds the user's pushes up to `upto`: any not sent yet are a gap.

        For pushes that may have been missed live (the bus between processes was down).
        """
        self._known = max(self._known, upto)

    @property
    def gap(self) -> Gap | None:
        """The seqs missing before the earliest kept push (or up to the highest known
        to be stored), to read from the store."""
        if self.user_id is None or self._held is not None:
            return None
        if self._early:
            return Gap(self.user_id, self._floor, min(self._early) - 1)
        if self._known > self._floor:
            return Gap(self.user_id, self._floor, self._known)
        return None

    def filled(
        self, gap: Gap, pushes: Iterable[tuple[StoredPush, str]], *, complete: bool
    ) -> list[Send]:
        """Pushes read from the store for `gap`: what to send now.

        `complete`: the read returned everything stored in the gap; the seqs still
        missing were pruned and are skipped. Otherwise `gap` asks for the rest.
        """
        if gap.user_id != self.user_id or self._held is not None:
            return []
        out = [self._advance(p, f) for p, f in pushes if self._floor < p.seq <= gap.upto]
        if complete:
            self._floor = max(self._floor, gap.upto)
        self._release_early(out)
        return out

    def _advance(self, push: StoredPush, frame: str, *, replay: bool = False) -> Send:
        self._floor = push.seq
        return Send(push, frame, replay)

    def _release_early(self, out: list[Send]) -> None:
        """Append the kept pushes that now follow on, in seq order."""
        for seq in sorted(self._early):
            if seq <= self._floor:
                del self._early[seq]
            elif seq == self._floor + 1:
                out.append(self._advance(*self._early.pop(seq)))
            else:
                break
