"""Push ordering without I/O (`lovewire.ordering`): what a socket sends, and when.

Deterministic: no socket, no store, no event loop. Each test feeds a `PushOrder` what
arrives (live, replayed, read for a gap) and checks what it says to send.
"""

from __future__ import annotations

from lovewire.ordering import Gap, PushOrder, Send
from lovewire.storage.records import StoredPush

USER = 7


def push(seq: int, user_id: int = USER) -> tuple[StoredPush, str]:
    return StoredPush(user_id=user_id, seq=seq, body="{}", created_ts=0), f"frame {seq}"


def seqs(sends: list[Send]) -> list[int]:
    return [send.push.seq for send in sends]


def logged_in(user_id: int = USER, floor: int = 0) -> PushOrder:
    """An order past its login's replay, having sent everything up to `floor`."""
    order = PushOrder()
    order.begin(user_id)
    assert order.replayed(user_id, [], floor) == []
    return order


def test_live_pushes_in_order_go_at_once_each_once() -> None:
    order = logged_in()
    assert seqs(order.live(*push(1))) == [1]
    assert seqs(order.live(*push(2))) == [2]
    assert order.live(*push(2)) == [] and order.live(*push(1)) == []
    assert order.gap is None and order.floor == 2


def test_push_ahead_waits_for_the_earlier_ones() -> None:
    order = logged_in()
    assert order.live(*push(3)) == []
    assert order.gap == Gap(USER, 0, 2)
    assert seqs(order.live(*push(1))) == [1]
    assert order.gap == Gap(USER, 1, 2)
    assert seqs(order.live(*push(2))) == [2, 3]
    assert order.gap is None


def test_gap_read_from_the_store_releases_the_kept_pushes() -> None:
    order = logged_in()
    order.live(*push(3))
    order.live(*push(5))
    gap = order.gap
    assert gap == Gap(USER, 0, 2)
    assert seqs(order.filled(gap, [push(1), push(2)], complete=True)) == [1, 2, 3]
    gap = order.gap
    assert gap == Gap(USER, 3, 4)
    assert seqs(order.filled(gap, [push(4)], complete=True)) == [4, 5]
    assert order.gap is None


def test_pruned_pushes_in_a_gap_are_skipped() -> None:
    order = logged_in()
    order.live(*push(4))
    gap = order.gap
    assert gap is not None
    assert seqs(order.filled(gap, [push(2)], complete=True)) == [2, 4]
    assert order.gap is None and order.floor == 4


def test_a_partial_read_asks_for_the_rest_of_the_gap() -> None:
    order = logged_in()
    order.live(*push(2000))
    gap = order.gap
    assert gap == Gap(USER, 0, 1999)
    first = [push(s) for s in range(1, 1001)]
    assert seqs(order.filled(gap, first, complete=False)) == list(range(1, 1001))
    gap = order.gap
    assert gap == Gap(USER, 1000, 1999)
    rest = [push(s) for s in range(1001, 2000)]
    assert seqs(order.filled(gap, rest, complete=True)) == list(range(1001, 2001))


def test_pushes_that_came_live_meanwhile_are_not_sent_twice_by_the_gap() -> None:
    order = logged_in()
    order.live(*push(3))
    gap = order.gap
    assert gap is not None
    assert seqs(order.live(*push(1))) == [1]
    assert seqs(order.filled(gap, [push(1), push(2)], complete=True)) == [2, 3]


def test_login_holds_live_pushes_until_its_replay_then_sends_both_in_order() -> None:
    order = PushOrder()
    order.begin(USER)
    assert order.live(*push(4)) == [] and order.live(*push(5)) == []
    assert order.gap is None  # nothing is read for a gap while the replay is pending
    sends = order.replayed(USER, [push(2), push(3), push(4)], upto=4)
    assert seqs(sends) == [2, 3, 4, 5]
    assert [send.replay for send in sends] == [True, True, True, False]
    assert order.floor == 5


def test_replay_skips_what_it_could_not_read() -> None:
    """A replay that read nothing (pruned, or the read failed) moves past its range."""
    order = PushOrder()
    order.begin(USER)
    order.live(*push(9))
    assert seqs(order.replayed(USER, [], upto=8)) == [9]


def test_a_login_ended_while_its_replay_was_read_gets_nothing() -> None:
    order = PushOrder()
    order.begin(USER)
    order.live(*push(3))
    order.end()  # logged out meanwhile (a logout elsewhere, expiry)
    assert order.replayed(USER, [push(1), push(2)], upto=2) == []
    assert order.live(*push(4)) == [] and order.gap is None


def test_a_gap_of_the_previous_user_sends_nothing_once_the_socket_is_another_users() -> None:
    order = logged_in()
    order.live(*push(2))
    gap = order.gap
    assert gap is not None
    order.begin(8)  # the socket logged in as user 8 while user 7's gap was read
    assert order.filled(gap, [push(1)], complete=True) == []
    assert seqs(order.replayed(8, [push(1, user_id=8)], upto=1)) == [1]
    assert order.live(*push(3)) == []  # user 7's pushes no longer reach it


def test_a_new_token_of_the_same_user_keeps_what_was_sent() -> None:
    order = logged_in(floor=5)
    order.begin(USER)  # a refresh, or another auth_request of the same user
    assert order.live(*push(5)) == []
    assert seqs(order.live(*push(6))) == [6]


def test_logged_out_socket_sends_no_push() -> None:
    order = PushOrder()
    assert order.live(*push(1)) == [] and order.gap is None


def test_pushes_known_to_be_stored_are_a_gap_to_read() -> None:
    """After the bus between processes was down: what the store holds beyond the floor."""
    order = logged_in()
    assert seqs(order.live(*push(1))) == [1]
    order.expect(3)
    gap = order.gap
    assert gap == Gap(USER, 1, 3)
    assert seqs(order.filled(gap, [push(2), push(3)], complete=True)) == [2, 3]
    assert order.gap is None
    order.expect(2)  # older news changes nothing
    assert order.gap is None
