"""Requests per second through real sockets, read-only and durable writes.

    python bench/throughput.py [clients] [requests_per_client]

`ping` measures the dispatch path; `refresh` (token_refresh_request: one transaction
with two writes, fsynced) measures durable writes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from websockets.asyncio.client import connect

from bench.common import raise_fd_limit, register_many, start_server


async def run(
    url: str, users: list[dict[str, Any]], per_client: int, frame: dict[str, Any]
) -> float:
    async def client(user: dict[str, Any]) -> None:
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "auth_request", "token": user["token"]}))
            assert json.loads(await ws.recv())["success"]
            for _ in range(per_client):
                await ws.send(json.dumps(frame))
                reply = json.loads(await ws.recv())
                assert reply["success"], reply

    start = time.perf_counter()
    await asyncio.gather(*(client(u) for u in users))
    return len(users) * per_client / (time.perf_counter() - start)


async def main(clients: int, per_client: int) -> None:
    raise_fd_limit()
    server = await start_server()
    users = await register_many(server, clients)
    ping = await run(server.ws_url, users, per_client, {"type": "ping_request"})
    print(f"ping: {ping:,.0f} requests/s ({clients} clients)")
    refresh = await run(
        server.ws_url, users, max(1, per_client // 10), {"type": "token_refresh_request"}
    )
    print(f"token_refresh (durable write): {refresh:,.0f} requests/s ({clients} clients)")
    await server.stop()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [50, 200][len(args) :])))
