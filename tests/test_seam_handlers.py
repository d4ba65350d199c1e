"""Handlers see a facade, not the engine (issue 8, item 4)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

from lovewire.context import Context
from lovewire.errors import BadToken
from lovewire.login import LoginMachine
from lovewire.session import Replay, Session
from protocol.pushes import CrushNotify
from tests.conftest import Server

HANDLERS = Path(__file__).resolve().parent.parent / "handlers"
#: Modules of handlers/ that are no feature: the package (it gathers the tables) and the
#: logic two features share.
NOT_FEATURES = {"__init__", "common"}
FEATURES = sorted(p.stem for p in HANDLERS.glob("*.py") if p.stem not in NOT_FEATURES)
#: What the facade hides: the socket's state, the process's services, its internals.
HIDDEN = {"session", "services", "act_as"}
#: Engine modules a handler has no business with: it gets all it needs from its Context.
ENGINE_INSIDE = {
    "lovewire.app",
    "lovewire.connection",
    "lovewire.dispatch",
    "lovewire.httpserver",
    "lovewire.hub",
    "lovewire.login",
    "lovewire.session",
    "lovewire.wsserver",
}


def _imports(path: Path) -> set[str]:
    """Every module a source file imports (`from a import b` counts as a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the handlers package
                base = "handlers" + ("." + base if base else "")
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_handler_feature_modules_are_found() -> None:
    """The checks below look at every feature module (else they would pass on nothing)."""
    assert {"auth", "crush", "pictures", "profile", "registration", "settings"} <= set(FEATURES)


@pytest.mark.parametrize("name", [*FEATURES, "common"])
def test_no_handler_module_imports_a_feature_module(name: str) -> None:
    """A feature module (or the shared one) imports no feature module."""
    imported = _imports(HANDLERS / f"{name}.py")
    features = {f"handlers.{feature}" for feature in FEATURES} - {f"handlers.{name}"}
    assert not imported & features, f"handlers/{name}.py imports {imported & features}"


@pytest.mark.parametrize("name", [*FEATURES, "common"])
def test_handlers_reach_only_the_facade(name: str) -> None:
    """No handler touches the socket's state or the services behind its Context."""
    path = HANDLERS / f"{name}.py"
    tree = ast.parse(path.read_text(), str(path))
    reached = sorted(
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and (node.attr in HIDDEN or (node.attr.startswith("_") and not node.attr.startswith("__")))
    )
    assert reached == [], f"handlers/{name}.py reaches behind the facade: {reached}"
    engine = _imports(path) & ENGINE_INSIDE
    assert not engine, f"handlers/{name}.py imports the engine's inside: {engine}"


def test_context_exposes_no_session_or_services(server: Server) -> None:
    """The facade has no attribute a handler could use to reach the socket or services."""
    services = server.app.services
    assert services is not None
    ctx = Context(services, Session("127.0.0.1"))
    for name in HIDDEN - {"act_as"}:
        assert not hasattr(ctx, name), name
    assert ctx.addr == "127.0.0.1" and ctx.login is None and ctx.code_tel is None


async def test_request_log_lines_name_connection_and_user_never_tel_token_or_code(
    roomy: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A request's log lines name its socket and its user (once logged in), and no secret.

    Two SMS failures on one socket, before and after it logs in: both lines name the
    socket, the second its user. No line of ours holds a tel, a code or a token.
    """
    server = roomy
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []
    async with server.connect() as c:
        tel = server.new_tel()
        secrets.append(tel)
        server.sms.status = 500
        failed = await c.request({"type": "sms_validation_request", "tel": tel})
        assert failed["error_no"] == 7, failed
        server.sms.status = 200
        assert (await c.request({"type": "sms_validation_request", "tel": tel}))["success"]
        code = await server.sms.code_for(tel)
        secrets.append(code)
        ticket = await c.request({"type": "sms_validation_code", "code": code})
        assert ticket["success"], ticket
        secrets.append(ticket["token"])
        reg = await c.request(
            {
                "type": "user_register_info",
                "token": ticket["token"],
                "nickname": "zhang",
                "sex": 1,
                "birthday": "1995-3-21",
            }
        )
        assert reg["success"], reg
        secrets.append(reg["token"])
        new_tel = server.new_tel()
        secrets.append(new_tel)
        server.sms.status = 500
        failed = await c.request({"type": "tel_change_request", "new_tel": new_tel})
        assert failed["error_no"] == 7, failed
    sms_lines = [r for r in caplog.records if "SMS to a tel failed" in r.getMessage()]
    assert len(sms_lines) == 2, [r.getMessage() for r in caplog.records]
    before, after = sms_lines
    conn = getattr(before, "conn", None)
    assert isinstance(conn, int)
    assert getattr(before, "user", "missing") is None
    assert before.getMessage().startswith(f"conn {conn} user -: ")
    user_id = int(reg["user_id"])
    assert getattr(after, "conn", None) == conn and getattr(after, "user", None) == user_id
    assert after.getMessage().startswith(f"conn {conn} user {user_id}: ")
    # Ours at every level; the libraries' debug lines (frames, SQL) are theirs to keep.
    mine = [r for r in caplog.records if r.name.startswith("lovewire") or r.levelno > 10]
    assert len(mine) >= 2
    for record in mine:
        text = record.getMessage()
        assert not [s for s in secrets if s in text], text


async def test_login_machine_checks_tokens_and_plans_replays(server: Server) -> None:
    """The login state machine works on a bare session: no socket, no handler."""
    services = server.app.services
    assert services is not None
    async with server.connect() as c:
        reg = await server.register(c)
    user_id = int(reg["user_id"])
    ctx = Context(services, Session("127.0.0.1"))
    async with ctx.unit() as tx:
        for count in (1, 2, 3):
            await ctx.push(tx, user_id, CrushNotify(count=count))
    session = Session("127.0.0.1")
    machine = LoginMachine(services.store, services.hub, services.clock, session)
    with pytest.raises(BadToken):
        await machine.check_token("not-a-token")
    login = await machine.check_token(reg["token"])
    assert login.user_id == user_id
    done = await machine.log_in(login, 1)
    assert (done.user.id, done.last_seq, done.recovered) == (user_id, 3, True)
    assert session.login is login and session.replay == Replay(user_id, 1, 3)
    assert await machine.check_token(reg["token"]) is login  # the session's own, unread
    done = await machine.log_in(login, 4)  # a seq the server never gave
    assert (done.last_seq, done.recovered) == (3, False)
    machine.log_out()
    assert session.login is None and session.replay is None
    with pytest.raises(BadToken):  # the session ended while a refresh's unit ran
        machine.replace_login(login, login)
    assert session.login is None
