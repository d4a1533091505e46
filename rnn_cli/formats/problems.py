"""A problem inspect reports about a module: the keys it concerns, one plain line, and a
machine-readable code (diagnose.code_of fills it in from the wording where empty)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    keys: tuple[str, ...]  # full keys (module prefix included)
    message: str  # one plain line
    runnable: bool = False  # True: inspect reports it (exit 1) but the module can still run (NaN weights)
    code: str = ""  # machine-readable kind; diagnose.code_of fills it in from the wording where empty
