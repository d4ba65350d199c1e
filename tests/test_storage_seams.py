"""The storage seams: the backend chosen from settings, and storage modules without cycles."""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lovewire.config import Settings
from lovewire.hub import LocalHub
from lovewire.session import Session
from lovewire.storage.backends import store_from_settings
from lovewire.storage.errors import BackendUnavailable
from lovewire.storage.postgres import PgStore
from lovewire.storage.records import StoredPush
from lovewire.storage.sqlite import SqliteStore
from tests.test_cli import _serve_argv

ROOT = Path(__file__).resolve().parent.parent
STORAGE = ROOT / "lovewire" / "storage"


def test_empty_database_url_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    store = store_from_settings(Settings(data_dir=tmp_path, database_url=""))
    assert isinstance(store, SqliteStore) and store.path.parent == tmp_path


@pytest.mark.parametrize("url", ["mysql://me:secret@h/x", "sqlite:///tmp/x.db"])
def test_a_url_of_no_backend_of_this_build_is_refused_without_its_password(
    tmp_path: Path, url: str
) -> None:
    with pytest.raises(BackendUnavailable) as caught:
        store_from_settings(Settings(data_dir=tmp_path, database_url=url))
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("url", ["postgresql://me:secret@127.0.0.1:5432/test", "postgres://h/x"])
def test_a_postgresql_url_is_the_postgresql_store(tmp_path: Path, url: str) -> None:
    """Built without touching the network: the server is reached at open."""
    store = store_from_settings(Settings(data_dir=tmp_path, database_url=url, database_pool=3))
    assert isinstance(store, PgStore) and store.url == url and store.pool_size == 3


async def test_serve_on_unreachable_postgresql_exits_with_one_line(tmp_path: Path) -> None:
    """`lovewire serve` whose PostgreSQL cannot be reached stops with one line and status 1,
    which does not show the URL's password."""
    env = {**os.environ, "LOVEWIRE_DATABASE_URL": "postgresql://me:secret@127.0.0.1:1/test"}
    proc = await asyncio.create_subprocess_exec(
        *_serve_argv(tmp_path),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1, err
    assert out == b""
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lovewire: cannot start:"), err
    assert "PostgreSQL" in lines[0] and "secret" not in lines[0]


def _imports(path: Path) -> set[str]:
    """Every `lovewire...` module a file imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lovewire"))
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lovewire")
        ):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_storage_modules_import_in_no_cycle() -> None:
    """The storage package's import graph (function-level imports included) has no cycle."""
    modules = {_module(p): p for p in STORAGE.rglob("*.py")}
    graph = {
        name: {dep for dep in _imports(path) if dep in modules and dep != name}
        for name, path in modules.items()
    }
    # A package's __init__ re-exporting its modules is not a cycle; a module importing
    # its own package back is (it sees whatever the package has defined so far).
    for name in graph:
        graph[name] -= {m for m in modules if m.startswith(name + ".")}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in sorted(graph[name]):
            visit(dep, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_only_the_factory_names_a_store(backend: str) -> None:
    """The engine and handlers see the interface only: errors included."""
    allowed = {STORAGE / "backends.py"}
    for path in [*(ROOT / "lovewire").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]:
        if (STORAGE / backend) in path.parents or path in allowed:
            continue
        bad = {m for m in _imports(path) if m.startswith(f"lovewire.storage.{backend}")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


class _Socket:
    """A subscriber that records what the hub queues for it."""

    token_id: int | None = None

    def __init__(self) -> None:
        self.session = Session("127.0.0.1")
        self.queued: list[tuple[int, str]] = []

    def deliver(self, push: StoredPush, frame: str) -> None:
        self.queued.append((push.seq, frame))

    def send_notice(self, frame: str) -> None: ...

    def send_ephemeral(self, frame: str) -> None: ...

    def end_session(self, frame: str) -> None: ...

    def evict(self) -> None: ...

    def catch_up(self) -> None: ...


def test_local_hub_publish_is_a_coroutine_that_never_suspends() -> None:
    """`publish` is awaited by its callers, yet queues every frame in one step, waiting on
    nothing: a networked hub may await its bus, the local one never a socket."""
    hub = LocalHub(ZoneInfo("Asia/Shanghai"), sockets_per_user=2)
    sockets = [_Socket(), _Socket()]
    for sock in sockets:
        hub.attach(7, sock)
    pushes = [
        StoredPush(user_id=7, seq=seq, body='{"type":"system_notify"}', created_ts=0)
        for seq in (1, 2)
    ]
    publishing = hub.publish(pushes)
    assert inspect.iscoroutine(publishing)
    with pytest.raises(StopIteration):
        publishing.send(None)  # finished at its first step: it never yielded to the loop
    assert [[seq for seq, _ in sock.queued] for sock in sockets] == [[1, 2], [1, 2]]
