"""The storage interface's contract, run on every store implementation.

Only `lovewire.storage.base` and its records and errors are used here: no SQL, no
backend's own types. Each test runs once per store of `STORES`; a backend is added by
naming it there (its URL from the environment) and making `store_from_settings` build it.
A store this build lacks skips with the reason; one that cannot be reached skips too,
but fails under `LOVEWIRE_REQUIRE_SERVICES` (CI).

Races are run as concurrent units (`asyncio.gather`): the outcome must be the same as if
they had run one after the other, whatever the backend's isolation.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TypeVar

import pytest

from lovewire.config import Settings
from lovewire.storage.backends import store_from_settings
from lovewire.storage.base import Store
from lovewire.storage.errors import BackendUnavailable, ReadOnlyUnit, StoreClosed
from lovewire.storage.records import ProfileChanges, Swept, User
from tests.helpers_postgres import TEST_URL, pg_schema

#: Store implementations and the database URL each runs on ("" is SQLite in tmp_path).
STORES = {
    "sqlite": "",
    "postgresql": TEST_URL,
}

T = TypeVar("T")

#: Concurrent units in each race.
RACERS = 12


#: Stores that need a server (`LOVEWIRE_REQUIRE_SERVICES`: fail, not skip, if unreachable).
SERVICES = {"postgresql"}


@pytest.fixture(
    params=[
        pytest.param(name, marks=[pytest.mark.needs_services] if name in SERVICES else [])
        for name in sorted(STORES)
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with AsyncExitStack() as stack:
        url = STORES[request.param]
        if request.param == "postgresql":
            url = await stack.enter_async_context(pg_schema(url))  # a schema of its own
        settings = Settings(data_dir=tmp_path, database_url=url)
        try:
            store = store_from_settings(settings)
        except BackendUnavailable as exc:
            pytest.skip(f"{request.param}: {exc}")  # not in this build yet
        try:
            await store.open()
        except OSError as exc:
            if os.environ.get("LOVEWIRE_REQUIRE_SERVICES"):
                raise
            pytest.skip(f"{request.param} not reachable: {exc}")
        try:
            yield store
        finally:
            await store.close()


async def new_user(store: Store, tel: str, nickname: str = "li") -> User:
    async with store.unit() as tx:
        return await tx.users.create(tel, nickname, 1, "1990-01-01", 100)


async def race(*units: Awaitable[T]) -> list[T]:
    """Run coroutines at once; their results in order."""
    return list(await asyncio.gather(*units))


# -- units ------------------------------------------------------------------------------


async def test_write_unit_commits_on_clean_exit_and_keeps_nothing_on_error(store: Store) -> None:
    user = await new_user(store, "13800000001")
    with pytest.raises(RuntimeError):
        async with store.unit() as tx:
            await tx.users.create("13800000002", "gone", 0, "1990-01-01", 100)
            await tx.users.set_crush_receive(user.id, False)
            raise RuntimeError("abandon the unit")
    async with store.read() as tx:
        assert await tx.users.by_tel("13800000002") is None
        kept = await tx.users.get(user.id)
    assert kept is not None and kept.crush_receive


WRITES = {
    "users.create": lambda tx: tx.users.create("13800000009", "x", 0, "1990-01-01", 1),
    "users.update_profile": lambda tx: tx.users.update_profile(1, ProfileChanges(nickname="x")),
    "users.end_sessions": lambda tx: tx.users.end_sessions(1),
    "tokens.create": lambda tx: tx.tokens.create(b"h" * 32, "session", 1, None, 10**9, 1),
    "tokens.revoke": lambda tx: tx.tokens.revoke([1]),
    "codes.add": lambda tx: tx.codes.add("13800000001", "login", None, b"c", 10**9, 1),
    "sms.record": lambda tx: tx.sms.record("13800000001", "127.0.0.1", 1),
    "pushes.append": lambda tx: tx.pushes.append(1, "{}", 1),
    "unit.push": lambda tx: tx.push(1, "{}", 1),
    "pushes.mark_delivered": lambda tx: tx.pushes.mark_delivered([(1, 1)]),
    "crushes.add": lambda tx: tx.crushes.add(1, "13800000002", "hi", 1, 0),
    "pictures.create": lambda tx: tx.pictures.create(1, "a.jpg", "", None, 1),
    "pictures.like": lambda tx: tx.pictures.like(1, 1, 1),
    "pictures.unlike": lambda tx: tx.pictures.unlike(1, 1),
}


@pytest.mark.parametrize("write", sorted(WRITES))
async def test_read_unit_refuses_every_write_loudly(store: Store, write: str) -> None:
    """A write in a read unit raises ReadOnlyUnit; nothing is silently rolled back."""
    user = await new_user(store, "13800000001")
    async with store.read() as tx:
        assert not tx.writable
        with pytest.raises(ReadOnlyUnit):
            await WRITES[write](tx)
    async with store.read() as tx:
        assert await tx.users.by_tel("13800000009") is None
        assert await tx.pushes.current_seq(user.id) == 0
        assert await tx.sms.count_all(0) == (0, None)
        assert await tx.pictures.feed(user.id, None, 10) == []
    # The reader is usable afterwards, and a write unit can do the same write.
    async with store.unit() as tx:
        assert tx.writable
        await WRITES[write](tx)


async def test_a_closed_store_refuses_units(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreClosed):
        async with store.unit() as tx:
            await tx.users.get(1)
    await store.close()  # closing twice is harmless


async def test_healthy_while_open(store: Store) -> None:
    assert await store.healthy()


# -- users ------------------------------------------------------------------------------


async def test_users_create_find_and_change(store: Store) -> None:
    first = await new_user(store, "13800000001", "li")
    second = await new_user(store, "13800000002", "wang")
    assert first.id != second.id
    assert (first.signature, first.avatar, first.crush_receive, first.push_seq) == ("", "", True, 0)
    async with store.unit() as tx:
        changed = await tx.users.update_profile(
            first.id, ProfileChanges(nickname="lili", signature="hello", avatar="a.jpg")
        )
        unchanged = await tx.users.update_profile(second.id, ProfileChanges())
        moved = await tx.users.set_tel(second.id, "13800000003")
        quiet = await tx.users.set_crush_receive(first.id, False)
    assert (changed.nickname, changed.signature, changed.avatar) == ("lili", "hello", "a.jpg")
    assert (changed.sex, changed.birthday) == (first.sex, first.birthday)
    assert unchanged == second
    assert moved.tel == "13800000003" and not quiet.crush_receive
    async with store.read() as tx:
        assert await tx.users.by_tel("13800000002") is None
        found = await tx.users.by_tel("13800000003")
        many = await tx.users.get_many([first.id, second.id, 999, first.id])
    assert found is not None and found.id == second.id
    assert sorted(many) == [first.id, second.id]
    assert many[first.id].nickname == "lili" and not many[first.id].crush_receive


def test_profile_changes_are_typed() -> None:
    assert ProfileChanges.of({"nickname": "li", "sex": 1}) == ProfileChanges(nickname="li", sex=1)
    with pytest.raises(TypeError):
        ProfileChanges.of({"tel": "13800000001"})
    with pytest.raises(TypeError):
        ProfileChanges.of({"crush_receive": False})
    with pytest.raises(TypeError):
        ProfileChanges.of({"sex": "1"})


# -- races ------------------------------------------------------------------------------


async def test_one_like_per_user_and_picture_under_concurrent_units(store: Store) -> None:
    owner = await new_user(store, "13800000001")
    fan = await new_user(store, "13800000002", "fan")
    async with store.unit() as tx:
        picture = await tx.pictures.create(owner.id, "p.jpg", "", None, 100)

    async def like() -> tuple[bool, bool]:
        async with store.unit() as tx:
            liked = await tx.pictures.like(picture.id, fan.id, 200)
            assert liked is not None
            assert (liked.count, liked.owner_id, liked.liker_nickname) == (1, owner.id, "fan")
            return liked.added, liked.tell_owner

    results = await race(*(like() for _ in range(RACERS)))
    assert results.count((True, True)) == 1
    assert results.count((False, False)) == RACERS - 1
    async with store.read() as tx:
        assert await tx.pictures.like_count(picture.id) == 1

    async def unlike() -> bool:
        async with store.unit() as tx:
            unliked = await tx.pictures.unlike(picture.id, fan.id)
            assert unliked is not None and unliked.count == 0
            return unliked.removed

    assert sorted(await race(*(unlike() for _ in range(RACERS)))) == [False] * (RACERS - 1) + [True]
    async with store.unit() as tx:
        assert await tx.pictures.like_count(picture.id) == 0
        again = await tx.pictures.like(picture.id, fan.id, 300)
    # Liked again: counted again, but the owner was told already.
    assert again is not None and (again.added, again.count, again.tell_owner) == (True, 1, False)


async def test_like_of_a_missing_picture_or_ones_own_tells_nobody(store: Store) -> None:
    """No such picture: None, nothing written. The owner's own like counts but is not told."""
    owner = await new_user(store, "13800000001", "me")
    async with store.unit() as tx:
        picture = await tx.pictures.create(owner.id, "p.jpg", "", None, 100)
        assert await tx.pictures.like(picture.id + 1, owner.id, 200) is None
        assert await tx.pictures.unlike(picture.id + 1, owner.id) is None
        own = await tx.pictures.like(picture.id, owner.id, 200)
        never = await tx.pictures.unlike(picture.id, owner.id + 1)
    assert own is not None and (own.added, own.count, own.tell_owner) == (True, 1, False)
    assert own.owner_id == owner.id and own.liker_nickname == "me"
    assert never is not None and (never.removed, never.count) == (False, 1)


async def test_concurrent_likes_answer_true_counts_and_push_gapless(store: Store) -> None:
    """Many fans like one picture at once, each pushing the owner as the handler does:
    the counts answered are 1..n, each once, and the owner's push with seq k carries
    count k (the picture's likes and the owner's seq are taken in one order). Then they
    all unlike at once: n-1..0."""
    owner = await new_user(store, "13800000001")
    fans = [await new_user(store, f"138000001{i:02d}") for i in range(RACERS)]
    async with store.unit() as tx:
        picture = await tx.pictures.create(owner.id, "p.jpg", "", None, 100)

    async def like(fan: User) -> int:
        async with store.unit() as tx:
            liked = await tx.pictures.like(picture.id, fan.id, 200)
            assert liked is not None and liked.tell_owner
            await tx.push(liked.owner_id, f'{{"n":{liked.count}}}', 200)
            return liked.count

    assert sorted(await race(*(like(fan) for fan in fans))) == list(range(1, RACERS + 1))
    async with store.read() as tx:
        pushes = await tx.pushes.after(owner.id, 0, RACERS, 100)
        assert await tx.pictures.like_count(picture.id) == RACERS
    assert [(p.seq, p.body) for p in pushes] == [(n, f'{{"n":{n}}}') for n in range(1, RACERS + 1)]

    async def unlike(fan: User) -> int:
        async with store.unit() as tx:
            unliked = await tx.pictures.unlike(picture.id, fan.id)
            assert unliked is not None and unliked.removed
            return unliked.count

    assert sorted(await race(*(unlike(fan) for fan in fans))) == list(range(RACERS))
    async with store.read() as tx:
        assert await tx.pictures.like_count(picture.id) == 0


async def test_one_match_per_pair_of_crushes_under_concurrent_units(store: Store) -> None:
    """Two users add each other at the same instant: the pair is matched exactly once."""
    a = await new_user(store, "13800000001")
    b = await new_user(store, "13800000002")

    async def add(me: User, other: User) -> bool:
        async with store.unit() as tx:
            mine = await tx.crushes.add(me.id, other.tel, "hi", 100, 0)
            theirs = await tx.crushes.pending_from(other.tel, me.tel, 0)
            if theirs is None:
                return False
            await tx.crushes.match(mine, theirs, 100)
            return True

    matched = await race(add(a, b), add(b, a))
    assert sorted(matched) == [False, True]
    async with store.read() as tx:
        crushes = await tx.crushes.of_user(a.id, 0) + await tx.crushes.of_user(b.id, 0)
        assert await tx.crushes.pending_from(a.tel, b.tel, 0) is None
    assert [c.matched for c in crushes] == [True, True]


async def test_push_seq_is_gapless_per_user_under_concurrent_writers(store: Store) -> None:
    user = await new_user(store, "13800000001")
    other = await new_user(store, "13800000002")

    async def push(n: int) -> list[int]:
        async with store.unit() as tx:
            first = await tx.push(user.id, f'{{"n":{n}}}', 100)
            await tx.push(other.id, "{}", 100)
            second = await tx.push(user.id, f'{{"n":{n}}}', 100)
            return [first.seq, second.seq]

    async def push_and_fail() -> list[int]:
        with pytest.raises(RuntimeError):
            async with store.unit() as tx:
                await tx.push(user.id, "{}", 100)
                raise RuntimeError("rolled back: its seq is not used")
        return []

    results = await race(*(push(n) for n in range(RACERS)), *(push_and_fail() for _ in range(3)))
    seqs = sorted(seq for pair in results for seq in pair)
    assert seqs == list(range(1, 2 * RACERS + 1))
    for pair in results[:RACERS]:
        assert pair[0] < pair[1]
    async with store.read() as tx:
        assert await tx.pushes.current_seq(user.id) == 2 * RACERS
        assert await tx.pushes.current_seq(other.id) == RACERS
        stored = await tx.pushes.after(user.id, 0, 2 * RACERS, 100)
        page = await tx.pushes.after(user.id, 5, 8, 100)
        assert await tx.pushes.oldest_seq(user.id) == 1
    assert [p.seq for p in stored] == list(range(1, 2 * RACERS + 1))
    assert [p.seq for p in page] == [6, 7, 8]


async def test_push_if_none_stores_nothing_and_takes_no_seq(store: Store) -> None:
    user = await new_user(store, "13800000001")
    async with store.unit() as tx:
        assert await tx.push_if(None, "{}", 100, stand_in=user.id) is None
        pushed = await tx.push_if(user.id, "{}", 100, stand_in=user.id)
        assert [p.seq for p in tx.new_pushes] == [1]
    assert pushed is not None and pushed.seq == 1
    async with store.read() as tx:
        assert [p.seq for p in await tx.pushes.after(user.id, 0, 10, 10)] == [1]


async def test_delivery_ack_and_prune(store: Store) -> None:
    user = await new_user(store, "13800000001")
    async with store.unit() as tx:
        for ts in (100, 200, 300):
            await tx.push(user.id, "{}", ts)
        await tx.pushes.mark_delivered([(user.id, 1)])
        await tx.pushes.ack(user.id, 99)  # never past the last seq
    async with store.read() as tx:
        assert [p.seq for p in await tx.pushes.undelivered(user.id, 3, 10)] == [2, 3]
        acked = await tx.users.get(user.id)
    assert acked is not None and acked.acked_seq == 3
    async with store.unit() as tx:
        assert await tx.pushes.prune(250) == 2
    async with store.read() as tx:
        assert await tx.pushes.oldest_seq(user.id) == 3
        assert await tx.pushes.current_seq(user.id) == 3


async def test_one_refresh_wins_and_ended_sessions_die(store: Store) -> None:
    user = await new_user(store, "13800000001")
    async with store.unit() as tx:
        gen = await tx.users.lock_sessions(user.id)
        assert gen is not None
        token_id = await tx.tokens.create(b"a" * 32, "session", user.id, None, 1000, 100, gen)
        ticket = await tx.tokens.create(b"t" * 32, "ticket", None, user.tel, 1000, 100)
    async with store.read() as tx:
        live = await tx.tokens.live_session(b"a" * 32, 500)
        assert await tx.tokens.live_session(b"a" * 32, 1000) is None  # expired at 1000
        assert await tx.tokens.live_session(b"t" * 32, 500) is None  # a ticket is no session
    assert live is not None and live.id == token_id and live.user_id == user.id

    async def refresh() -> bool:
        async with store.unit() as tx:
            return await tx.tokens.revoke_live(token_id, 500)

    won = await race(*(refresh() for _ in range(RACERS)))
    assert won.count(True) == 1
    async with store.unit() as tx:
        assert not await tx.tokens.hold(token_id, 500)
        gen = await tx.users.lock_sessions(user.id)
        assert gen is not None
        fresh = await tx.tokens.create(b"b" * 32, "session", user.id, None, 1000, 100, gen)
        assert await tx.tokens.hold(fresh, 500)
        assert await tx.tokens.active_ids(user.id, 500) == [fresh]
        assert await tx.tokens.bind_ticket(ticket, user.id, 500)
        assert await tx.users.end_sessions(user.id) == gen + 1
        await tx.tokens.revoke_all(user.id, [user.tel])
    async with store.read() as tx:
        assert await tx.tokens.live_session(b"b" * 32, 500) is None
        assert await tx.tokens.active_ids(user.id, 500) == []
        stale = await tx.tokens.by_hash(b"t" * 32)
    assert stale is not None and stale.revoked
    async with store.unit() as tx:
        assert not await tx.tokens.bind_ticket(ticket, user.id, 500)
        assert await tx.users.lock_sessions(999) is None


async def test_sms_log_counts_every_send_under_concurrent_units(store: Store) -> None:
    async def send(tel: str, addr: str, ts: int) -> int:
        async with store.unit() as tx:
            return await tx.sms.record(tel, addr, ts)

    sends = [("13800000001", "10.0.0.1", 100 + i) for i in range(RACERS)]
    sends += [("13800000002", "10.0.0.2", 500), ("13800000001", "10.0.0.2", 600)]
    ids = await race(*(send(*s) for s in sends))
    assert len(set(ids)) == len(sends)
    async with store.read() as tx:
        assert await tx.sms.count_tel("13800000001", 0) == (RACERS + 1, 100)
        assert await tx.sms.count_tel("13800000001", 105) == (RACERS - 5 + 1, 105)
        assert await tx.sms.count_addr("10.0.0.2", 0) == (2, 500)
        assert await tx.sms.count_all(550) == (1, 600)
        assert await tx.sms.count_all(601) == (0, None)
        assert await tx.sms.last_for_tel("13800000001") == 600
        assert await tx.sms.last_for_tel("13800000009") is None
    async with store.unit() as tx:
        await tx.sms.delete(ids[-1])
    async with store.read() as tx:
        assert await tx.sms.last_for_tel("13800000001") == 100 + RACERS - 1


async def test_codes_are_single_use_under_concurrent_units(store: Store) -> None:
    tel = "13800000001"
    async with store.unit() as tx:
        old = await tx.codes.add(tel, "login", None, b"old", 1000, 100)
        code = await tx.codes.add(tel, "login", None, b"new", 1000, 110)
    async with store.read() as tx:
        pending = await tx.codes.pending(tel, "login", 500)
        assert await tx.codes.pending(tel, "login", 1000) is None  # expired
        assert await tx.codes.pending(tel, "tel_new", 500) is None
    assert pending is not None and pending.id == code != old and pending.code_hash == b"new"
    async with store.unit() as tx:
        assert await tx.codes.fail(code) == 1
        assert await tx.codes.fail(code) == 2
        assert await tx.codes.failures_since(tel, 0) == 2

    async def use() -> bool:
        async with store.unit() as tx:
            found = await tx.codes.pending(tel, "login", 500)
            return found is not None and await tx.codes.use(found.id)

    used = await race(*(use() for _ in range(RACERS)))
    assert used.count(True) == 1
    async with store.unit() as tx:
        assert await tx.codes.pending(tel, "login", 500) is None
        assert not await tx.codes.use(code)


async def test_counts_follow_likes_comments_replies_and_deletes(store: Store) -> None:
    """The feed's counts are kept by the writes: likes, comments, replies, and deletes of
    a comment (its replies go with it) or of a post."""
    async with store.unit() as tx:
        owner = await tx.users.create("13800000101", "owner", 0, "1990-01-01", 0)
        fans = [
            await tx.users.create(f"1380000020{i}", f"f{i}", 1, "1990-01-01", 0) for i in range(3)
        ]
        picture = await tx.pictures.create(owner.id, "ab/" + "c" * 64 + ".jpg", "w", None, 0)
        other = await tx.pictures.create(owner.id, "ab/" + "d" * 64 + ".jpg", "w", None, 0)
        for fan in fans:
            await tx.pictures.like(picture.id, fan.id, 1)
        await tx.pictures.like(picture.id, fans[0].id, 2)  # twice: counted once
        await tx.pictures.unlike(picture.id, fans[1].id)
        first = await tx.pictures.add_comment(picture.id, fans[0].id, "a", None, None, None, 3)
        second = await tx.pictures.add_comment(picture.id, fans[1].id, "b", None, None, None, 4)
        for n in range(3):
            await tx.pictures.add_comment(
                picture.id, owner.id, f"r{n}", first.id, first.id, None, 5
            )
        reply = await tx.pictures.add_comment(
            picture.id, owner.id, "s", second.id, second.id, None, 6
        )
        await tx.pictures.add_comment(other.id, owner.id, "elsewhere", None, None, None, 7)

    async def counts() -> tuple[int, int, dict[int, int]]:
        async with store.read() as tx:
            post = next(p for p in await tx.pictures.feed(owner.id, None, 20) if p.id == picture.id)
            comments = await tx.pictures.comments_of([picture.id], 10)
            assert await tx.pictures.like_count(picture.id) == post.like_count
        return post.like_count, post.comment_count, {c.id: c.reply_count for c in comments}

    assert await counts() == (2, 2, {first.id: 3, second.id: 1})
    async with store.unit() as tx:
        await tx.pictures.delete_comment(reply.id)
        await tx.pictures.delete_comment(first.id)
    assert await counts() == (2, 1, {second.id: 0})
    async with store.unit() as tx:
        await tx.pictures.delete(picture.id)
    async with store.read() as tx:
        assert [
            (p.id, p.comment_count, p.like_count)
            for p in await tx.pictures.feed(owner.id, None, 20)
        ] == [(other.id, 1, 0)]


# -- chat (4.6) -------------------------------------------------------------------------


async def test_chat_open_close_once_and_one_open_per_pair(store: Store) -> None:
    a, b = await new_user(store, "13800000001"), await new_user(store, "13800000002")
    async with store.unit() as tx:
        conv = await tx.chats.open(b.id, a.id, 100, 400)
    assert (conv.low_user, conv.high_user) == tuple(sorted((a.id, b.id)))
    assert conv.ended_ts is None and conv.last_ts == 100 and conv.is_open(399)
    assert not conv.is_open(400)
    with pytest.raises(Exception):  # noqa: B017  a second open conversation for the pair
        async with store.unit() as tx:
            await tx.chats.open(a.id, b.id, 101, 401)

    async def close() -> bool:
        async with store.unit() as tx:
            return await tx.chats.close(conv.id, 150, "closed") is not None

    assert sorted(await race(*(close() for _ in range(RACERS)))) == [False] * (RACERS - 1) + [True]
    async with store.unit() as tx:
        assert await tx.chats.close_pair(a.id, b.id, 160) is None
        again = await tx.chats.open(a.id, b.id, 170, 470)
        closed = await tx.chats.close_pair(b.id, a.id, 180)
    assert again.id != conv.id and closed is not None and closed.end_reason == "closed"
    async with store.read() as tx:
        first = await tx.chats.get(conv.id)
    assert first is not None and (first.ended_ts, first.end_reason) == (150, "closed")


async def test_chat_messages_history_read_marks_and_list(store: Store) -> None:
    a, b = await new_user(store, "13800000001", "a"), await new_user(store, "13800000002", "b")
    c = await new_user(store, "13800000003", "c")
    async with store.unit() as tx:
        ab = await tx.chats.open(a.id, b.id, 100, 10**6)
        ac = await tx.chats.open(a.id, c.id, 101, 10**6)
        sent = [
            await tx.chats.add_message(ab.id, b.id, f"m{i}", "", None, 110 + i) for i in range(5)
        ]
        mine = await tx.chats.add_message(ab.id, a.id, "me", "ab/x.png", "k1", 120)
    async with store.read() as tx:
        assert await tx.chats.by_client_msg_id(a.id, "k1") == mine
        assert await tx.chats.by_client_msg_id(b.id, "k1") is None
        page = await tx.chats.history(ab.id, None, 3)
        older = await tx.chats.history(ab.id, page[0].id, 10)
        listed = await tx.chats.of_user(a.id)
        last = await tx.chats.last_messages([ab.id, ac.id])
        for_b = await tx.chats.of_user(b.id)
    assert [m.msg for m in page] == ["m3", "m4", "me"]
    assert [m.msg for m in older] == ["m0", "m1", "m2"]
    assert [i.conversation.id for i in listed] == [ab.id, ac.id]  # latest activity first
    assert [(i.peer_id, i.peer_nickname, i.unread) for i in listed] == [
        (b.id, "b", 5),
        (c.id, "c", 0),
    ]
    assert last == {ab.id: mine}
    assert [i.unread for i in for_b] == [1]
    async with store.unit() as tx:
        assert await tx.chats.mark_read(ab.id, a.id, sent[2].id)
        assert not await tx.chats.mark_read(ab.id, a.id, sent[1].id)  # never moves back
        assert not await tx.chats.mark_read(ab.id, a.id, sent[2].id)
    async with store.read() as tx:
        assert [i.unread for i in await tx.chats.of_user(a.id)] == [2, 0]
        assert [i.unread for i in await tx.chats.of_user(b.id)] == [1]


async def test_chat_last_activity_only_moves_forward(store: Store) -> None:
    """A conversation's last_ts is its newest message's time: a message of the same
    second, or of a clock set back, leaves it; the list follows it, latest first."""
    a, b = await new_user(store, "13800000001", "a"), await new_user(store, "13800000002", "b")
    c = await new_user(store, "13800000003", "c")
    async with store.unit() as tx:
        ab = await tx.chats.open(a.id, b.id, 100, 10**6)
        ac = await tx.chats.open(a.id, c.id, 101, 10**6)
        await tx.chats.add_message(ab.id, b.id, "first", "", None, 150)
        await tx.chats.add_message(ab.id, b.id, "same second", "", None, 150)
        await tx.chats.add_message(ab.id, b.id, "clock set back", "", None, 140)
        await tx.chats.add_message(ac.id, c.id, "earlier", "", None, 149)
    async with store.read() as tx:
        chat = await tx.chats.get(ab.id)
        listed = await tx.chats.of_user(a.id)
    assert chat is not None and chat.last_ts == 150
    assert [i.conversation.id for i in listed] == [ab.id, ac.id]
    async with store.unit() as tx:
        await tx.chats.add_message(ac.id, c.id, "later", "", None, 151)
    async with store.read() as tx:
        listed = await tx.chats.of_user(a.id)
    assert [(i.conversation.id, i.conversation.last_ts) for i in listed] == [
        (ac.id, 151),
        (ab.id, 150),
    ]


async def test_chat_keep_both_and_expiry_claimed_once(store: Store) -> None:
    users = [await new_user(store, f"1380000000{i}") for i in range(4)]
    async with store.unit() as tx:
        kept = await tx.chats.open(users[0].id, users[1].id, 100, 200)
        due = await tx.chats.open(users[2].id, users[3].id, 100, 200)
        later = await tx.chats.open(users[0].id, users[2].id, 100, 300)
        half = await tx.chats.keep(kept.id, users[0].id)
        both = await tx.chats.keep(kept.id, users[1].id)
    assert half.kept_by(users[0].id) and not half.kept and both.kept

    async def claim() -> list[int]:
        async with store.unit() as tx:
            return [c.id for c in await tx.chats.claim_expired(250, 10)]

    claims = await race(*(claim() for _ in range(RACERS)))
    assert sorted(i for ids in claims for i in ids) == [due.id]
    async with store.read() as tx:
        ended = await tx.chats.get(due.id)
        still = await tx.chats.get(later.id)
    assert ended is not None and (ended.ended_ts, ended.end_reason) == (250, "expired")
    assert still is not None and still.ended_ts is None


async def test_chat_retention_deletes_ended_with_messages_and_names_pictures(store: Store) -> None:
    a, b = await new_user(store, "13800000001"), await new_user(store, "13800000002")
    async with store.unit() as tx:
        old = await tx.chats.open(a.id, b.id, 100, 10**6)
        await tx.chats.add_message(old.id, a.id, "hi", "ab/one.png", None, 110)
        await tx.chats.add_message(old.id, b.id, "", "ab/one.png", None, 111)
        await tx.chats.close(old.id, 120, "closed")
        new = await tx.chats.open(a.id, b.id, 130, 10**6)
        await tx.chats.add_message(new.id, a.id, "", "ab/two.png", None, 131)
    async with store.read() as tx:
        assert await tx.pictures.path_in_use("ab/one.png")
    async with store.unit() as tx:
        assert await tx.chats.delete_ended(120, 10) == Swept(0, 0, [])
        assert await tx.chats.delete_ended(121, 10) == Swept(1, 2, ["ab/one.png"])
    async with store.read() as tx:
        assert await tx.chats.get(old.id) is None
        assert await tx.chats.history(old.id, None, 10) == []
        assert not await tx.pictures.path_in_use("ab/one.png")
        assert await tx.pictures.path_in_use("ab/two.png")
        assert [i.conversation.id for i in await tx.chats.of_user(a.id)] == [new.id]


async def test_crush_remove_names_the_other_user_of_the_match(store: Store) -> None:
    a, b = await new_user(store, "13800000001"), await new_user(store, "13800000002")
    async with store.unit() as tx:
        mine = await tx.crushes.add(a.id, b.tel, "", 100, 0)
        theirs = await tx.crushes.add(b.id, a.tel, "", 100, 0)
        lone = await tx.crushes.add(a.id, "13800000009", "", 100, 0)
        await tx.crushes.match(mine, theirs, 100)
    async with store.unit() as tx:
        assert await tx.crushes.remove(lone, 110) is None
        assert await tx.crushes.remove(mine, 110) == b.id


async def test_chat_retention_deletes_a_long_conversation_a_few_messages_a_unit(
    store: Store,
) -> None:
    """A unit deletes at most `limit` messages; the conversation goes with the last of them,
    and each unit names the pictures of the messages it deleted."""
    a, b = await new_user(store, "13800000001"), await new_user(store, "13800000002")
    async with store.unit() as tx:
        chat = await tx.chats.open(a.id, b.id, 100, 10**6)
        for i in range(5):
            await tx.chats.add_message(chat.id, a.id, f"m{i}", f"ab/{i % 2}.png", None, 110 + i)
        await tx.chats.close(chat.id, 120, "closed")
    swept = []
    for _ in range(4):
        async with store.unit() as tx:
            swept.append(await tx.chats.delete_ended(121, 2))
    assert [(s.conversations, s.messages) for s in swept] == [(0, 2), (0, 2), (1, 1), (0, 0)]
    assert all(set(s.pictures) <= {"ab/0.png", "ab/1.png"} for s in swept)
    assert set(swept[0].pictures) | set(swept[1].pictures) == {"ab/0.png", "ab/1.png"}
    async with store.read() as tx:
        assert await tx.chats.get(chat.id) is None
        assert not await tx.pictures.path_in_use("ab/0.png")


async def test_chat_sent_since_counts_a_senders_messages(store: Store) -> None:
    a, b = await new_user(store, "13800000001"), await new_user(store, "13800000002")
    async with store.unit() as tx:
        chat = await tx.chats.open(a.id, b.id, 100, 10**6)
        for ts in (100, 130, 160):
            await tx.chats.add_message(chat.id, a.id, "x", "", None, ts)
        await tx.chats.add_message(chat.id, b.id, "y", "", None, 170)
    async with store.unit() as tx:
        assert await tx.chats.sent_since(a.id, 120) == (2, 130)
        assert await tx.chats.sent_since(a.id, 200) == (0, None)
        assert await tx.chats.sent_since(b.id, 0) == (1, 170)


async def test_chat_close_pair_past_expiry_says_expired(store: Store) -> None:
    a, b = await new_user(store, "13800000001"), await new_user(store, "13800000002")
    async with store.unit() as tx:
        await tx.chats.open(a.id, b.id, 100, 200)
        late = await tx.chats.close_pair(a.id, b.id, 200)
        kept = await tx.chats.open(a.id, b.id, 300, 400)
        await tx.chats.keep(kept.id, a.id)
        await tx.chats.keep(kept.id, b.id)
        closed = await tx.chats.close_pair(a.id, b.id, 500)
    assert late is not None and late.end_reason == "expired"
    assert closed is not None and closed.end_reason == "closed"
