"""Entry point: `python server.py [flags]` is `lovewire serve [flags]`."""

from __future__ import annotations

import sys

from lovewire.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["serve", *sys.argv[1:]]))
