"""Every module imports alone, and `protocol` imports nothing of the engine or handlers.

Like aiohttp's `tests/test_circular_imports.py`: an import cycle shows only when a module
is imported first, in a process that has loaded none of the project. Starting a fresh
interpreter per module costs about a second and a half each (pydantic, aiohttp), so one
fresh interpreter loads the third-party libraries only, then forks a child per module:
each child starts with none of the project loaded, imports its one module, and reports
what it loaded. The `protocol` modules go first; then the parent imports `protocol` (pure,
as they have just shown) so the children for `handlers` and `lovewire` skip rebuilding
its models.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "handlers", "lovewire")
#: What the engine and the handlers may be imported without.
FORBIDDEN = {"protocol": {"lovewire", "handlers"}, "handlers": set(), "lovewire": {"handlers"}}


def _modules(package: str) -> list[str]:
    """The package and every module under it, found on disk without importing any."""
    found = [package]
    todo = [(ROOT / package, package)]
    while todo:
        path, prefix = todo.pop()
        for info in pkgutil.iter_modules([str(path)]):
            name = f"{prefix}.{info.name}"
            found.append(name)
            if info.ispkg:
                todo.append((path / info.name, name))
    return sorted(found)


MODULES = [name for package in PACKAGES for name in _modules(package)]

_ZYGOTE = textwrap.dedent(
    """
    import importlib, json, os, sys, traceback

    out, project = sys.argv[1], tuple(sys.argv[2].split(","))
    for lib in ("pydantic", "pydantic_settings", "aiohttp.web", "aiosqlite", "PIL.Image",
                "phonenumbers", "websockets.asyncio.server", "websockets.asyncio.client"):
        importlib.import_module(lib)
    assert not [m for m in sys.modules if m.split(".")[0] in project]

    def child(name):
        try:
            importlib.import_module(name)
            error = None
        except BaseException:
            error = traceback.format_exc()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in project)
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump({"error": error, "loaded": loaded}, f)

    def run(names):
        running = set()
        for name in names:
            if len(running) >= (os.cpu_count() or 1):
                running.discard(os.wait()[0])
            pid = os.fork()
            if pid == 0:
                try:
                    child(name)
                finally:
                    os._exit(0)
            running.add(pid)
        for pid in running:
            os.waitpid(pid, 0)

    names = sys.argv[3:]
    run([n for n in names if n.split(".")[0] == "protocol"])
    importlib.import_module("protocol")
    run([n for n in names if n.split(".")[0] != "protocol"])
    """
)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each module imported alone: its error (None) and the project modules it loaded."""
    out = tmp_path_factory.mktemp("imports")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(
        [sys.executable, "-c", _ZYGOTE, str(out), ",".join(PACKAGES), *MODULES],
        cwd=out,
        env=env,
        check=True,
        timeout=120,
    )
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def test_imports_every_module_found() -> None:
    """The walk finds the packages' modules (a broken walk would make the rest vacuous)."""
    assert {"protocol.base", "handlers.auth", "lovewire.app", "lovewire.storage.base"} <= set(
        MODULES
    )
    assert len(MODULES) > 30


@pytest.mark.parametrize("name", MODULES)
def test_imports_module_alone_succeeds(imported: dict[str, dict[str, Any]], name: str) -> None:
    """The module imports first in a process with none of the project loaded."""
    assert name in imported, f"{name}: the child reported nothing"
    assert imported[name]["error"] is None, imported[name]["error"]
    forbidden = FORBIDDEN[name.split(".")[0]]
    pulled = [m for m in imported[name]["loaded"] if m.split(".")[0] in forbidden]
    assert not pulled, f"{name} imports {pulled}"
