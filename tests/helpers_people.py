"""Registered users on sockets of their own, for tests between two or more people."""

from __future__ import annotations

from contextlib import AsyncExitStack

from tests.conftest import Client, Server

__all__ = ["Person", "user"]


class Person(Client):
    """A registered, logged-in client and who it is."""

    tel = ""
    user_id = ""
    token = ""


async def user(server: Server, stack: AsyncExitStack, nickname: str = "zhang") -> Person:
    """Register a new user on a new socket."""
    client = await stack.enter_async_context(server.connect())
    person = Person(client.ws)
    reg = await server.register(person, nickname=nickname)
    person.tel, person.user_id, person.token = reg["tel"], reg["user_id"], reg["token"]
    return person
