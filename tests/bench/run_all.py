"""Runs every bench in tests/bench (`python -m tests.bench.run_all`), one after another,
then prints what each found side by side. gateway_vs_direct runs first: it measures the
anchor app (bare FastAPI + asyncpg) whose figures every target line prints beside its own.

A bench is a module here whose name does not start with `_`. One with `run_bench(argv)`
runs in this process and hands back its summary lines; any other runs as
`python -m tests.bench.<name>` and is judged by its exit status. Before each, Postgres
writes out what the last one left dirty (CHECKPOINT). The exit status is non-zero if any
bench missed its targets.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

from tests.bench._harness import BenchReport, anchor_beside, load_average, settle_postgres

FIRST = "tests.bench.gateway_vs_direct"  # measures the anchor app the others print beside their targets


def benches() -> list[str]:
    here = Path(__file__).parent
    found = sorted(
        f"tests.bench.{info.name}"
        for info in pkgutil.iter_modules([str(here)])
        if not info.name.startswith("_") and info.name != "run_all"
    )
    return sorted(found, key=lambda name: name != FIRST)


def main() -> int:
    reports: dict[str, BenchReport] = {}
    for name in benches():
        settle_postgres()
        print(f"\n=== {name} (load average {load_average():.1f}) ===", flush=True)
        module = importlib.import_module(name)
        if hasattr(module, "run_bench"):
            report: BenchReport = module.run_bench([])
            print("\n".join(report.lines), flush=True)
        else:
            code = subprocess.run([sys.executable, "-m", name], check=False).returncode
            report = BenchReport([f"exit status {code}"], ok=code == 0)
        reports[name] = report

    print("\n=== summary ===")
    print(f"anchor {anchor_beside()}")
    for name, report in reports.items():
        print(f"\n{name}: {'targets met' if report.ok else 'BELOW TARGET'}")
        print("\n".join(f"  {line}" for line in report.lines))
    failed = [name for name, report in reports.items() if not report.ok]
    if failed:
        print(f"\nbelow target: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
