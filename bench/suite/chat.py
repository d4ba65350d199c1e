"""Chat message -> peer: not measured until the chat messages exist (issue 11)."""

from __future__ import annotations

import asyncio
import sys

from bench.suite.core import Result, Suite

__all__ = ["chat"]


async def chat(suite: Suite) -> Result:
    """Skipped while `lovewire schema` knows no `chat_send_request`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lovewire.cli", "schema", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    if b"chat_send_request" not in out:
        note = "not yet: needs the chat messages (issue 11)"
    else:
        note = "not yet: chat_send_request exists, but this scenario is still to be written"
    return Result("chat", None, "ms (p99)", "<= 20 at 1000/s", None, note)
