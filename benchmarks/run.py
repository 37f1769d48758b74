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

from benchmarks.timing import load, target_met  # noqa: E402


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def mark(row: dict) -> str:
    """✓ when the row met its target, ✗ when it missed it, blank when it has none."""
    met = row.get("met")
    return "" if met is None else ("✓" if met else "✗")


def _loads(row: dict) -> str:
    """The 1-minute load average when the row's bench began and ended."""
    first = str(row.get("load_before", "")).split(",")[0]
    last = str(row.get("load_after", "")).split(",")[0]
    return f"{first} → {last}" if first or last else ""


def table(rows: list[dict]) -> str:
    lines = [
        "| benchmark | median | min–max | baseline | baseline median | ratio | target | met | load before → after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | error: {r['error']} | | | | | | ✗ | {_loads(r)} |")
            continue
        lines.append(
            f"| {r['name']} | {r['median_s']:.3f} s | {r['min_s']:.3f}–{r['max_s']:.3f} s | {r['baseline']} | "
            f"{r['baseline_median_s']:.3f} s | {r['ratio']} | {r.get('target', '')} | {mark(r)} | {_loads(r)} |"
        )
        if r.get("note"):
            notes.append(f"- {r['name']}: {r['note']}")
    return "\n".join(lines + ([""] + notes if notes else []))


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
        print(f"running {name} … (load average {load()})", file=sys.stderr)
        before = load()
        try:
            got = importlib.import_module(f"benchmarks.{name}").main(args.repeats)
        except Exception as exc:  # a broken bench must not hide the others
            traceback.print_exc()
            got = [{"name": name, "error": f"{type(exc).__name__}: {exc}"}]
        for row in got:
            row.setdefault("load_before", before)
            row.setdefault("load_after", load())
            if "error" not in row:
                row["met"] = target_met(row)  # after the bench's own extra fields (extra_ms, …)
        rows.extend(got)
    out = ROOT / "benchmarks" / "results" / "latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))
    print(f"Machine: {machine()}; load average now {load()} (1, 5, 15 min)")
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
