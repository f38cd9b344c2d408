"""Runs every bench in tests/bench (`python -m tests.bench.run_all`), one after another.

A bench is a module here whose name does not start with `_` and that has `main() -> int`;
the exit status is non-zero if any bench missed its targets.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def benches() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        f"tests.bench.{info.name}"
        for info in pkgutil.iter_modules([str(here)])
        if not info.name.startswith("_") and info.name != "run_all"
    )


def main() -> int:
    failed = []
    for name in benches():
        print(f"\n=== {name} ===", flush=True)
        module = importlib.import_module(name)
        if module.main([]) != 0:
            failed.append(name)
    if failed:
        print(f"\nbelow target: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
