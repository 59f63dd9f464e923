"""Running `atmorep` commands from a benchmark as a user would: a subprocess with --json."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any


def atmorep(*args: str) -> tuple[dict[str, Any], float]:
    """`atmorep ARGS --json`: its JSON output ({} if it printed none) and wall seconds; exits
    with the command's stderr if it fails."""
    print("$ atmorep " + " ".join(args), file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "atmorep_cli", *args, "--json"],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"atmorep {args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    found = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return found, time.perf_counter() - started
