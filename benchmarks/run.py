"""Run every ``benchmarks/bench_*.py`` next to its baseline and print one table.

Usage: ``python benchmarks/run.py [--repeats N] [--only NAME]``. Results are also
written to ``benchmarks/results/latest.json``. Benchmarks never fail CI: a bench
that crashes is reported as such and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def table(rows: list[dict]) -> str:
    lines = [
        "| benchmark | median | min–max | baseline | baseline median | ratio | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | error: {r['error']} | | | | | |")
            continue
        lines.append(
            f"| {r['name']} | {r['median_s']:.3f} s | {r['min_s']:.3f}–{r['max_s']:.3f} s | {r['baseline']} | "
            f"{r['baseline_median_s']:.3f} s | {r['ratio']} | {r.get('target', '')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", help="run only bench_NAME.py")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    for path in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        name = path.stem
        if args.only and name != f"bench_{args.only}" and name != args.only:
            continue
        print(f"running {name} …", file=sys.stderr)
        try:
            rows.extend(importlib.import_module(f"benchmarks.{name}").main(args.repeats))
        except Exception as exc:  # a broken bench must not hide the others
            traceback.print_exc()
            rows.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
    out = ROOT / "benchmarks" / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    print(f"Machine: {machine()}\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
