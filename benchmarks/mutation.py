"""Mutation testing of the modules that decide what is secret and where the token goes (issue 20).

One command: ``.venv/bin/python benchmarks/mutation.py [--max-children N] [MODULE ...]``
(MODULE: ``mask``, ``target``, ``requirements``, ``secrets``; all four when none is named).

Each module is mutated by mutmut 3.8 against its own unit-test files only, so that a mutant
is killed by the tests written for that module, not by an end-to-end run that happens to pass
through it. mutmut reads its settings from the ``pyproject.toml`` of the folder it runs in and
writes its copy of the project to ``mutants/`` there: each module therefore gets its own folder,
``mutants/<module>/``, holding a copy of ``doctor/``, ``tests/`` and ``setup.cfg`` and a
``pyproject.toml`` with only that module's ``[tool.mutmut]`` (the folder is rebuilt on every run
and ignored by git). Tests marked ``cluster`` (a real Ray head) or ``slow`` (a whole ``check``)
are left out: the run is about the modules' own rules.

The score printed per module is killed / all mutants, and, beside it, killed / the mutants
that change behaviour: ``NOT_BEHAVIOUR`` lists, by mutmut's name, the survivors that only
change message text or are equivalent to the original (each with its reason; docs/mutation.md
has the table). A listed mutant that is killed or no longer exists is reported as stale.
Exit status: 0 when every module reaches ``TARGET`` of its behaviour-changing mutants, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants"
TARGET = 0.90
# Left out of every run: a real Ray head, or a whole `check`/`fix` through the CLI (seconds per test).
MARKERS = "not cluster and not slow"
COPIED = ("setup.cfg", "packages.txt", "environment.yml")


@dataclass(frozen=True)
class Module:
    source: str  # the file mutated
    tests: tuple[str, ...]  # its own unit-test files


MODULES: dict[str, Module] = {
    "mask": Module("doctor/render/mask.py", ("tests/test_masking.py",)),
    # The masking rules themselves (known secrets longest first, flags, pairs, Bearer, URL credentials),
    # moved out of render/mask.py into the one masking module that head/, fix/ and the renderer share.
    "masking": Module("doctor/masking.py", ("tests/test_masking.py", "tests/test_requirements_parser.py")),
    "target": Module("doctor/target.py", ("tests/test_target.py",)),
    "requirements": Module(
        "doctor/local/requirements.py",
        ("tests/test_requirements.py", "tests/test_requirements_files.py", "tests/test_requirements_parser.py"),
    ),
    "secrets": Module("doctor/secrets.py", ("tests/test_token_sources.py",)),
}

# mutmut's name of a surviving mutant -> why it does not count as a change of behaviour.
NOT_BEHAVIOUR: dict[str, str] = {
    "doctor.render.mask.xǁ_Walkerǁ__call____mutmut_29": "equivalent: list(items) of a fresh list is that list",
    "doctor.target.x_parse_address__mutmut_36": "equivalent: split('://') without maxsplit has the same first part",
    "doctor.target.x_parse_address__mutmut_39": "equivalent: split('://', 2) has the same first part",
    "doctor.target.x_parse_address__mutmut_115": "equivalent: end <= 0 — the text starts with '[', so ']' is never at 0",
    "doctor.target.x_parse_address__mutmut_116": "equivalent: end < 1 — the text starts with '[', so ']' is never at 0",
    "doctor.local.requirements.x__conda_dependency__mutmut_18": "equivalent: lstrip of '=' and 'X' — a Python version never begins with 'X'",
    "doctor.local.requirements.x__entry__mutmut_15": "equivalent: the split at ';' that follows cuts the marker off anyway",
    "doctor.local.requirements.x__entry__mutmut_17": "equivalent: the split at ';' that follows cuts the marker off anyway",
    "doctor.local.requirements.x__entry__mutmut_63": "equivalent: packaging's InvalidRequirement always has a message",
    "doctor.local.requirements.x__entry__mutmut_66": "equivalent: packaging's InvalidRequirement always has a message",
    "doctor.local.requirements.x__entry__mutmut_67": "equivalent: 'unreadable' is never reached (InvalidRequirement always has a message)",
    "doctor.local.requirements.x__entry__mutmut_68": "equivalent: 'unreadable' is never reached (InvalidRequirement always has a message)",
    "doctor.local.requirements.x__entry__mutmut_78": "message-only: the length packaging's reason is clipped to (160 -> 120)",
    "doctor.local.requirements.x__entry__mutmut_79": "message-only: the length packaging's reason is clipped to (160 -> 161)",
    "doctor.local.requirements.x__include_path__mutmut_3": "equivalent: an include always has a value (one without is a usage error)",
    "doctor.local.requirements.x__load_yaml__mutmut_21": "message-only: the text of the too-deeply-nested error (still a one-line UsageError)",
    "doctor.local.requirements.x__looks_like_path__mutmut_5": "equivalent: a text that starts with '/' contains '/'",
    "doctor.local.requirements.x__looks_like_path__mutmut_7": "equivalent: a text that starts with '\\' contains '\\'",
    "doctor.local.requirements.x__pip_section__mutmut_24": "equivalent: constraint=None is as false as False",
    "doctor.local.requirements.x_join_lines__mutmut_3": "equivalent: `first` is always set before it is read",
    "doctor.local.requirements.x_join_lines__mutmut_4": "equivalent: `first` is always set before it is read",
    "doctor.local.requirements.x_load_requirements__mutmut_12": "equivalent: constraint=None is as false as False",
    "doctor.local.requirements.x_parse_text__mutmut_14": "equivalent: no option text gives no options either way",
    "doctor.local.requirements.x_portable__mutmut_8": "equivalent: moved=None is as false as False",
    "doctor.local.requirements.x_portable__mutmut_30": "equivalent: an unknown or stray word always has its value",
    "doctor.local.requirements.xǁ_Loaderǁ_entry__mutmut_2": "equivalent: a 'requirement' entry always has its Requirement, other kinds never",
    "doctor.local.requirements.xǁ_Loaderǁ_option__mutmut_8": "equivalent: an unknown option always has its value",
    "doctor.local.requirements.xǁ_Loaderǁ_option__mutmut_15": "equivalent: a stray word always has its value",
}

# mutmut 3.8's exit codes (mutmut/stats.py::status_by_exit_code), folded into what the table shows.
_STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 37: "killed"}
_TIMEOUT = {36, 24, -24, 152, 255}


def status(code: int | None) -> str:
    if code is None:
        return "not checked"
    if code in _TIMEOUT:
        return "timeout"  # the mutant made a test hang past mutmut's limit: counted as killed
    return _STATUS.get(code, "suspicious")


def prepare(name: str, module: Module) -> Path:
    """``mutants/<name>/``: a fresh copy of the project and a ``[tool.mutmut]`` for this module alone."""
    folder = WORK / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "doctor", folder / "doctor", ignore=ignore)
    shutil.copytree(ROOT / "tests", folder / "tests", ignore=ignore)
    for name in COPIED:  # files the tests read beside the package (the shipped pins)
        shutil.copy2(ROOT / name, folder / name)
    settings = {
        "source_paths": ["doctor"],
        "only_mutate": [module.source],
        "pytest_add_cli_args_test_selection": list(module.tests),
        "pytest_add_cli_args": ["-m", MARKERS, "-p", "no:cacheprovider"],
        "also_copy": [name for name in COPIED if name != "setup.cfg"],
        "use_git_change_detection": False,
    }
    lines = ["[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def run_mutmut(folder: Path, max_children: int, log: Path) -> int:
    with open(log, "w", encoding="utf-8") as out:
        return subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode


def results(folder: Path, module: Module) -> dict[str, str]:
    """Mutant name -> status, from mutmut's record of the module (``mutants/<source>.meta``)."""
    meta = folder / "mutants" / (module.source + ".meta")
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    return {key: status(code) for key, code in codes.items()}


def diff(folder: Path, mutant: str) -> str:
    shown = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", mutant], cwd=folder, capture_output=True, text=True, check=False
    )
    return shown.stdout.strip()


def summary(name: str, found: dict[str, str]) -> tuple[dict[str, object], list[str], list[str]]:
    """The module's row of the table, its behaviour-changing survivors, and its stale ``NOT_BEHAVIOUR`` names."""
    total = len(found)
    killed = sum(1 for s in found.values() if s in ("killed", "timeout"))
    survivors = sorted(k for k, s in found.items() if s not in ("killed", "timeout"))
    exempt = [k for k in survivors if k in NOT_BEHAVIOUR]
    behaviour = total - len(exempt)
    stale = sorted(k for k in NOT_BEHAVIOUR if k.startswith(_prefix(name)) and found.get(k, "killed") == "killed")
    row: dict[str, object] = {
        "module": name,
        "mutants": total,
        "killed": killed,
        "survived": len(survivors),
        "untested": sum(1 for k in survivors if found[k] == "no tests"),
        "not_behaviour": len(exempt),
        "score": killed / total if total else 0.0,
        "behaviour_score": killed / behaviour if behaviour else 0.0,
        "survivors": [k for k in survivors if k not in NOT_BEHAVIOUR],
    }
    return row, [k for k in survivors if k not in NOT_BEHAVIOUR], stale


def _prefix(name: str) -> str:
    return MODULES[name].source.removesuffix(".py").replace("/", ".") + "."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"modules to mutate: {', '.join(MODULES)} (default: all)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--diff", action="store_true", help="show the diff of each behaviour-changing survivor")
    parser.add_argument("--json", type=Path, help="also write the scores to this file")
    args = parser.parse_args(argv)
    names = args.modules or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}: choose from {', '.join(MODULES)}")
    rows: list[dict[str, object]] = []
    passed: list[bool] = []
    failed: list[str] = []
    for name in names:
        module = MODULES[name]
        started = time.monotonic()
        folder = prepare(name, module)
        code = run_mutmut(folder, args.max_children, folder / "mutmut.log")
        found = results(folder, module)
        if code != 0 or not found:
            print(f"{name}: mutmut failed (exit {code}); see {folder / 'mutmut.log'}", file=sys.stderr)
            failed.append(name)
            continue
        row, survivors, stale = summary(name, found)
        passed.append(float(row["behaviour_score"]) >= TARGET)  # type: ignore[arg-type]
        row["seconds"] = round(time.monotonic() - started)
        rows.append(row)
        print(
            f"{name:<13} {module.source:<30} mutants {row['mutants']:>4}  killed {row['killed']:>4}  "
            f"survived {row['survived']:>3} (no test reaches {row['untested']:>3}; message-only/equivalent "
            f"{row['not_behaviour']:>3})  "
            f"score {row['score']:.1%}  behaviour {row['behaviour_score']:.1%}  [{row['seconds']}s]",
            flush=True,
        )
        for mutant in survivors:
            print(f"    survived: {mutant}" + (" (no test reaches it)" if found[mutant] == "no tests" else ""))
            if args.diff:
                print("\n".join("        " + line for line in diff(folder, mutant).splitlines()))
        for mutant in stale:
            print(f"    stale NOT_BEHAVIOUR entry (killed or gone): {mutant}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    if failed:
        return 2
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
