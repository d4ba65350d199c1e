"""The PostgreSQL store as several processes use it: two stores (two pools, as two
processes would have) on one schema, racing.

The contract suite (`test_storage_contract.py`) races units of one store; here each race
spreads its units over both stores, and the limits counted in the database (SMS caps,
per-user budgets, crush caps) are checked to count every unit once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import asyncpg
import pytest

from lovewire.storage.errors import StoreClosed, StoreError
from lovewire.storage.postgres import PgStore, migrations
from lovewire.storage.records import User
from tests.helpers_postgres import pg_schema

pytestmark = pytest.mark.needs_services

T = TypeVar("T")

#: Concurrent units in each race, spread over the two stores.
RACERS = 12


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with pg_schema() as url:
        yield url


@pytest.fixture
async def stores(url: str) -> AsyncIterator[tuple[PgStore, PgStore]]:
    first, second = PgStore(url, pool_size=4), PgStore(url, pool_size=4)
    await first.open()
    try:
        await second.open()
        try:
            yield first, second
        finally:
            await second.close()
    finally:
        await first.close()


def pick(stores: tuple[PgStore, PgStore], n: int) -> PgStore:
    """The store of the n-th racer: every other one on each."""
    return stores[n % 2]


async def race(*units: Awaitable[T]) -> list[T]:
    return list(await asyncio.gather(*units))


async def new_user(store: PgStore, tel: str) -> User:
    async with store.unit() as tx:
        return await tx.users.create(tel, "li", 1, "1990-01-01", 100)


async def test_stores_opening_together_apply_each_migration_once(url: str) -> None:
    stores = [PgStore(url, pool_size=1) for _ in range(4)]
    try:
        await race(*(store.open() for store in stores))
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT number FROM lovewire_migrations ORDER BY number")
        finally:
            await conn.close()
        assert [row["number"] for row in rows] == [n for n, _, _ in migrations()]
    finally:
        for store in stores:
            await store.close()


async def test_seq_is_gapless_when_two_stores_push_to_one_user(
    stores: tuple[PgStore, PgStore],
) -> None:
    user = await new_user(stores[0], "13800000001")

    async def push(n: int) -> list[int]:
        async with pick(stores, n).unit() as tx:
            first = await tx.push(user.id, "{}", 100)
            second = await tx.push(user.id, "{}", 100)
            return [first.seq, second.seq]

    async def push_and_fail(n: int) -> list[int]:
        with pytest.raises(RuntimeError):
            async with pick(stores, n).unit() as tx:
                await tx.push(user.id, "{}", 100)
                raise RuntimeError("rolled back: its seq is not used")
        return []

    results = await race(*(push(n) for n in range(RACERS)), push_and_fail(0), push_and_fail(1))
    assert sorted(s for pair in results for s in pair) == list(range(1, 2 * RACERS + 1))
    async with stores[1].read() as tx:
        stored = await tx.pushes.after(user.id, 0, 10 * RACERS, 10 * RACERS)
    assert [p.seq for p in stored] == list(range(1, 2 * RACERS + 1))


async def test_one_match_when_two_stores_add_a_mutual_crush(
    stores: tuple[PgStore, PgStore],
) -> None:
    for round_ in range(4):  # several pairs: each pair's race must end in one match
        a = await new_user(stores[0], f"1380000{round_}001")
        b = await new_user(stores[1], f"1380000{round_}002")

        async def add(store: PgStore, me: User, other: User) -> bool:
            async with store.unit() as tx:
                mine = await tx.crushes.add(me.id, other.tel, "hi", 100, 0)
                theirs = await tx.crushes.pending_from(other.tel, me.tel, 0)
                if theirs is None:
                    return False
                await tx.crushes.match(mine, theirs, 100)
                return True

        matched = await race(add(stores[0], a, b), add(stores[1], b, a))
        assert sorted(matched) == [False, True]
        async with stores[0].read() as tx:
            crushes = await tx.crushes.of_user(a.id, 0) + await tx.crushes.of_user(b.id, 0)
        assert [c.matched for c in crushes] == [True, True]


async def test_one_like_when_two_stores_like_at_once(stores: tuple[PgStore, PgStore]) -> None:
    owner = await new_user(stores[0], "13800000001")
    fan = await new_user(stores[0], "13800000002")
    async with stores[0].unit() as tx:
        picture = await tx.pictures.create(owner.id, "p.jpg", "", None, 100)

    async def like(n: int) -> bool:
        async with pick(stores, n).unit() as tx:
            liked = await tx.pictures.like(picture.id, fan.id, 200)
            assert liked is not None and liked.count == 1
            return liked.added and liked.tell_owner

    assert (await race(*(like(n) for n in range(RACERS)))).count(True) == 1
    async with stores[1].read() as tx:
        assert await tx.pictures.like_count(picture.id) == 1


async def test_likes_and_unlikes_of_both_stores_answer_true_counts(
    stores: tuple[PgStore, PgStore],
) -> None:
    """Fans on both stores like one picture at once and push its owner: the counts
    answered are 1..n, and the owner's push with seq k says k. Then half of them unlike
    while the others like a second time (changing nothing): the unlikes answer n-1..n/2
    and the second likes a count between, never a stale one."""
    owner = await new_user(stores[0], "13800000001")
    fans = [await new_user(stores[n % 2], f"138000001{n:02d}") for n in range(RACERS)]
    async with stores[0].unit() as tx:
        picture = await tx.pictures.create(owner.id, "p.jpg", "", None, 100)

    async def like(n: int) -> int:
        async with pick(stores, n).unit() as tx:
            liked = await tx.pictures.like(picture.id, fans[n].id, 200)
            assert liked is not None
            if liked.tell_owner:
                await tx.push(liked.owner_id, f'{{"n":{liked.count}}}', 200)
            return liked.count

    assert sorted(await race(*(like(n) for n in range(RACERS)))) == list(range(1, RACERS + 1))
    async with stores[1].read() as tx:
        pushes = await tx.pushes.after(owner.id, 0, 100, 100)
    assert [(p.seq, p.body) for p in pushes] == [(n, f'{{"n":{n}}}') for n in range(1, RACERS + 1)]

    async def unlike(n: int) -> int:
        async with pick(stores, n).unit() as tx:
            unliked = await tx.pictures.unlike(picture.id, fans[n].id)
            assert unliked is not None and unliked.removed
            return unliked.count

    half = RACERS // 2
    counts = await race(*(unlike(n) for n in range(half)), *(like(n) for n in range(half, RACERS)))
    assert sorted(counts[:half]) == list(range(half, RACERS))
    assert all(half <= count <= RACERS for count in counts[half:])
    async with stores[0].read() as tx:
        assert await tx.pictures.like_count(picture.id) == half
        assert await tx.pushes.current_seq(owner.id) == RACERS


async def test_sms_caps_count_every_send_of_both_stores(stores: tuple[PgStore, PgStore]) -> None:
    """Check, then record, as `send_code` does: the cap holds across stores."""
    cap = 3

    async def send(n: int) -> bool:
        async with pick(stores, n).unit() as tx:
            count, _ = await tx.sms.count_tel("13800000001", 0)
            if count >= cap:
                return False
            await tx.sms.record("13800000001", f"10.0.0.{n}", 100)
            return True

    assert (await race(*(send(n) for n in range(RACERS)))).count(True) == cap
    async with stores[0].read() as tx:
        assert await tx.sms.count_all(0) == (cap, 100)


async def test_action_budget_holds_across_stores(stores: tuple[PgStore, PgStore]) -> None:
    """Check, then count, as `check_budget` and `record_action` do."""
    user = await new_user(stores[0], "13800000001")
    limit = 4

    async def act(n: int) -> bool:
        async with pick(stores, n).unit() as tx:
            count, _ = await tx.pictures.actions_since(user.id, "comment", 0)
            if count >= limit:
                return False
            await tx.pictures.record_action(user.id, "comment", 100, 0)
            return True

    assert (await race(*(act(n) for n in range(RACERS)))).count(True) == limit


async def test_crush_cap_holds_across_stores(stores: tuple[PgStore, PgStore]) -> None:
    user = await new_user(stores[0], "13800000001")
    cap = 2

    async def add(n: int) -> bool:
        async with pick(stores, n).unit() as tx:
            if await tx.crushes.count_of_user(user.id, 0) >= cap:
                return False
            await tx.crushes.add(user.id, f"139000000{n:02d}", "", 100, 0)
            return True

    assert (await race(*(add(n) for n in range(RACERS)))).count(True) == cap


async def test_a_write_unit_that_swallowed_a_failed_statement_keeps_nothing(
    stores: tuple[PgStore, PgStore],
) -> None:
    """PostgreSQL aborts the transaction at a failed statement: the unit says so."""
    store = stores[0]
    user = await new_user(store, "13800000001")
    with pytest.raises(StoreError):
        async with store.unit() as tx:
            await tx.users.set_crush_receive(user.id, False)
            with pytest.raises(StoreError):
                await tx.users.create(user.tel, "twin", 0, "1990-01-01", 1)  # tel taken
    async with store.read() as tx:
        kept = await tx.users.get(user.id)
    assert kept is not None and kept.crush_receive


async def test_unreachable_server_is_an_oserror_and_closed_store_is_unhealthy(url: str) -> None:
    with pytest.raises(OSError):
        await PgStore("postgresql://postgres@127.0.0.1:1/test").open()
    store = PgStore(url)
    await store.open()
    assert await store.healthy()
    await store.close()
    assert not await store.healthy()
    with pytest.raises(StoreClosed):
        async with store.read():
            pass


async def test_units_cancelled_while_waiting_on_a_lock_keep_nothing_and_free_connections(
    stores: tuple[PgStore, PgStore],
) -> None:
    """More cancelled units than the pool has connections: every connection comes back."""
    first, second = stores
    user = await new_user(first, "13800000001")
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with first.unit() as tx:
            await tx.push(user.id, "{}", 1)
            holding.set()
            await release.wait()

    async def waiter(entered: asyncio.Event) -> None:
        async with second.unit() as tx:
            entered.set()
            await tx.push(user.id, "{}", 1)  # waits for the holder's lock on the counter

    held = asyncio.create_task(holder())
    await holding.wait()
    for _ in range(2 * second.pool_size):
        entered = asyncio.Event()
        waiting = asyncio.create_task(waiter(entered))
        await entered.wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
    release.set()
    await held
    async with second.unit() as tx:
        assert (await tx.push(user.id, "{}", 2)).seq == 2
    async with second.read() as tx:
        assert [p.seq for p in await tx.pushes.after(user.id, 0, 10, 10)] == [1, 2]
