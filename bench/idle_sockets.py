"""Memory per idle logged-in socket: server RSS before and after opening N sockets.

python bench/idle_sockets.py [N]     (default 2000; 10000 needs `ulimit -n` >= 20500)
"""

from __future__ import annotations

import asyncio
import json
import sys

from websockets.asyncio.client import connect

from bench.common import raise_fd_limit, register_many, start_server


async def main(count: int) -> None:
    raise_fd_limit()
    server = await start_server()
    users = await register_many(server, 50)
    await asyncio.sleep(1)
    before = server.rss_kib()
    sockets = []
    for i in range(count):
        ws = await connect(server.ws_url, ping_interval=None)
        await ws.send(json.dumps({"type": "auth_request", "token": users[i % 50]["token"]}))
        sockets.append(ws)
    for ws in sockets:
        reply = json.loads(await ws.recv())
        assert reply["success"], reply
    await asyncio.sleep(1)
    after = server.rss_kib()
    per = (after - before) / count
    print(f"idle logged-in sockets: {count}")
    print(f"server RSS before: {before} KiB, after: {after} KiB")
    print(f"per socket: {per:.1f} KiB (goal: about 20 KiB)")
    for ws in sockets:
        await ws.close()
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
