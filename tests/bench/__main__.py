"""`make bench`: run every benchmark module in this folder and print one table.

A benchmark module is `tests/bench/bench_<topic>.py` with a function
`run(quick: bool) -> list[Row]`. Run a subset with
`python -m tests.bench parser transaction`; `--quick` shortens each run.
Benchmarks are not tests: they print figures and never assert on them, but a
row may carry a goal so the table shows whether it was met.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path

from tests.bench.rows import Row, format_table


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules([str(here)])
        if info.name.startswith("bench_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("topics", nargs="*", help=f"subset of: {', '.join(discover())}")
    parser.add_argument("--quick", action="store_true", help="shorter runs, rougher figures")
    args = parser.parse_args(argv)
    topics = args.topics or discover()
    rows: list[Row] = []
    for topic in topics:
        module = importlib.import_module(f"tests.bench.bench_{topic}")
        started = time.perf_counter()
        print(f"== {topic}", file=sys.stderr, flush=True)
        rows.extend(module.run(args.quick))
        print(f"   {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
