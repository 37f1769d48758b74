"""The project's pins: ``packages.txt`` (pip requirements) or ``environment.yml``.

Only what raydoctor judges is parsed: names, specifiers, extras and markers.
Options lines (``--index-url``, ``-e``) are skipped with a note; ``-r`` and
``-c`` includes are followed relative to the including file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from doctor.errors import UsageError


@dataclass
class Requirements:
    path: Path
    requirements: list[Requirement] = field(default_factory=list)
    python: str | None = None  # from environment.yml's `python=3.12.9`
    notes: list[str] = field(default_factory=list)

    def find(self, name: str) -> Requirement | None:
        key = canonicalize_name(name)
        for req in self.requirements:
            if canonicalize_name(req.name) == key:
                return req
        return None


def _strip_comment(line: str) -> str:
    # pip treats " #" as a comment start; a "#" inside a URL fragment has no space before it.
    if line.lstrip().startswith("#"):
        return ""
    idx = line.find(" #")
    return (line[:idx] if idx >= 0 else line).strip()


_ARCHIVES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2")


def _is_path_or_url(line: str) -> bool:
    """pip also takes a local folder, an archive or a URL on a line of its own."""
    first = line.split(";")[0].strip()
    return first.startswith((".", "/", "~", "\\")) or "://" in first.split("@")[0] or first.endswith(_ARCHIVES)


def _parse_lines(path: Path, lines: list[str], out: Requirements, seen: set[Path]) -> None:
    for number, raw in enumerate(lines, 1):
        line = _strip_comment(raw)
        if not line:
            continue
        if line.startswith(("-r ", "--requirement ", "-c ", "--constraint ")):
            try:
                included = (path.parent / line.split(None, 1)[1].strip()).resolve()
            except (OSError, ValueError):  # a NUL byte, a loop of symlinks: not a path the OS takes
                raise UsageError(f"{path}:{number}: {line!r} does not name a readable file") from None
            if line.startswith(("-c", "--constraint")):
                out.notes.append(f"{path.name}:{number}: constraints file {included.name} not judged")
                continue
            _load_pip(included, out, seen)
            continue
        if line.startswith("-"):
            out.notes.append(f"{path.name}:{number}: option {line.split()[0]} skipped")
            continue
        if _is_path_or_url(line):
            out.notes.append(f"{path.name}:{number}: {line} is a path or URL: installed by fix, not judged")
            continue
        try:
            out.requirements.append(Requirement(line))
        except InvalidRequirement as exc:
            reason = str(exc).splitlines()[0]
            raise UsageError(f"{path}:{number}: {line!r} is not a valid requirement ({reason})") from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"requirements file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise UsageError(f"requirements file {path} cannot be read: {exc}") from None


def _load_pip(path: Path, out: Requirements, seen: set[Path]) -> None:
    if path in seen:
        return
    seen.add(path)
    _parse_lines(path, _read(path).splitlines(), out, seen)


def _load_environment_yml(path: Path) -> Requirements:
    import yaml

    try:
        data = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}: invalid YAML{where}") from None
    except RecursionError:  # PyYAML composes recursively: thousands of nested '[' exhaust the stack
        raise UsageError(f"{path}: nested too deeply to read") from None
    if not isinstance(data, dict) or not isinstance(data.get("dependencies", []), list):
        raise UsageError(f"{path}: expected a mapping with a 'dependencies' list (conda's environment.yml format)")
    out = Requirements(path)
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            _parse_lines(path, [str(item) for item in dep["pip"]], out, {path})
        elif isinstance(dep, str):
            name, _, version = dep.replace(" ", "").partition("=")
            name = name.split("::")[-1]
            if name == "python":
                out.python = version.lstrip("=") or None
            elif name and name != "pip":
                spec = (
                    f"{name}=={version.lstrip('=')}"
                    if version and not version.startswith(("<", ">", "!"))
                    else name + version
                )
                try:
                    out.requirements.append(Requirement(spec.replace("==*", "").rstrip("*").rstrip(".")))
                except InvalidRequirement:
                    out.notes.append(f"{path.name}: conda dependency {dep!r} not judged")
        else:
            raise UsageError(f"{path}: dependency {dep!r} is neither a string nor a 'pip:' list")
    return out


def load_requirements(path: Path) -> Requirements:
    """Parse a pip requirements file or a conda environment.yml; ``UsageError`` on bad input."""
    if path.suffix in {".yml", ".yaml"}:
        return _load_environment_yml(path)
    out = Requirements(path)
    _load_pip(path.resolve(), out, set())
    out.path = path
    return out
