"""The project's pins: ``packages.txt`` (pip requirements) or ``environment.yml``.

The one reader of requirements files in raydoctor: ``check`` judges what it returns, ``fix``
installs from it (``doctor.fix.install``) and ``--export`` reads ``pip freeze`` with it. It
reads a file as pip does (``pip/_internal/req/req_file.py``):

- ``\\`` continues a line (``join_lines``); a comment starts at ``#`` at the start of a line or
  after whitespace (``COMMENT_RE``, ``ignore_comments``), so a URL's ``#fragment`` is kept;
- a line splits into the requirement and its options at the first word that starts with ``-``
  (``break_args_options``): ``numpy==1.26.4 --hash=sha256:…`` as ``pip-compile
  --generate-hashes`` and ``uv pip compile --generate-hashes`` write it;
- a line that is all options sets the file's options (``SUPPORTED_OPTIONS``): ``-i``/
  ``--index-url``, ``--extra-index-url``, ``--no-index``, ``-f``/``--find-links``,
  ``--trusted-host``, ``--pre``, ``--no-binary``, ``--only-binary``, ``--prefer-binary``,
  ``--require-hashes``, ``--use-feature``; ``-r``/``--requirement`` and ``-c``/``--constraint``
  include another file, relative to the including file's folder; ``-e``/``--editable`` names
  an editable install;
- environment markers (``; python_version >= "3.9"``) stay on the requirement, judged later.

Editables, paths and URLs are noted, not judged (``pkg @ https://…`` is judged by its name).
Credentials in URLs (``https://user:token@host/…``) never appear in a display string: every
note, message and ``display`` masks them as pip's ``redact_netloc`` does
(``pip/_internal/utils/misc.py``), and ``Requirements.secret_values()`` names them for the
report's one masking pass. Installers get the files themselves, credentials intact.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from doctor.errors import UsageError
from doctor.masking import ENV_REF as _ENV_REF
from doctor.masking import URL_AUTH as _URL_AUTH
from doctor.masking import login_scheme as _login_scheme
from doctor.masking import mask_credentials as mask_credentials  # the one rule, re-exported

MAX_DEPTH = 16  # -r/-c includes nested deeper than this are refused
MAX_FILES = 256  # files one load may read
MAX_BYTES = 8 * 1024 * 1024  # a requirements file larger than this is not a requirements file

# -- URL credentials -------------------------------------------------------------------------


def credential_values(text: str) -> set[str]:
    """The passwords and tokens of the URLs in ``text``, as written and percent-decoded."""
    found: set[str] = set()
    for match in _URL_AUTH.finditer(text):
        user, colon, password = match.group("auth").partition(":")
        secret = password if colon else ("" if _login_scheme(match.group("scheme")) else user)
        if secret and not _ENV_REF.match(secret):
            found.update({secret, unquote(secret)})
    return found


# -- what a file holds -------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """An option of a requirements file (``--index-url URL``), by its long name."""

    name: str
    value: str | None
    path: Path
    line: int

    @property
    def display(self) -> str:
        return mask_credentials(self.name if self.value is None else f"{self.name} {self.value}")


@dataclass(frozen=True)
class Entry:
    """One thing to install, from a requirement line (or ``-e`` line) of a file.

    ``kind``: ``requirement`` (a name, maybe ``name @ URL``: judged by its name), ``editable``,
    ``path`` or ``url`` (noted, not judged). ``text`` is the line's requirement part as written,
    credentials included: installer input only, never shown (use ``display``).
    """

    path: Path
    line: int
    text: str
    kind: str
    requirement: Requirement | None = None
    hashes: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    constraint: bool = False  # from a -c/--constraint file

    @property
    def display(self) -> str:
        return mask_credentials(self.text)

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


@dataclass(frozen=True)
class Include:
    """``-r FILE`` / ``-c FILE``: ``path`` resolved against the including file (None for a URL)."""

    flag: str  # "-r" | "-c"
    target: str
    path: Path | None


@dataclass(frozen=True)
class Line:
    """One logical line of a file: continuations joined, comment removed, credentials intact."""

    path: Path
    number: int
    text: str
    entry: Entry | None = None
    options: tuple[Option, ...] = ()  # the file's options set on this line
    include: Include | None = None


@dataclass
class Requirements:
    path: Path
    requirements: list[Requirement] = field(default_factory=list)  # named requirements: what check judges
    python: str | None = None  # from environment.yml's `python=3.12.9`
    notes: list[str] = field(default_factory=list)  # display strings: credentials masked
    entries: list[Entry] = field(default_factory=list)  # every requirement of every file, constraints too
    options: list[Option] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # every file read, the given one first
    pip_section: list[Line] = field(default_factory=list)  # environment.yml's `pip:` items, as lines
    _raw: list[str] = field(default_factory=list, repr=False)  # every line read, for secret_values

    def find(self, name: str) -> Requirement | None:
        key = canonicalize_name(name)
        for req in self.requirements:
            if canonicalize_name(req.name) == key:
                return req
        return None

    @property
    def constraints(self) -> list[Entry]:
        return [e for e in self.entries if e.constraint and e.requirement is not None]

    def pip_lines(self) -> list[str]:
        """An environment.yml as one pip requirements file: its conda dependencies as pip requirements,
        then its ``pip:`` items as conda hands them to pip, readable from any folder (``portable``).
        Installer input: credentials intact, never shown."""
        conda = [str(e.requirement) for e in self.entries if e.line == 0 and e.requirement is not None]
        return conda + [portable(line) for line in self.pip_section]

    def secret_values(self) -> set[str]:
        """The passwords and tokens in the URLs of every file read (requirements, options, includes)."""
        found: set[str] = set()
        for text in self._raw:
            found |= credential_values(text)
        return found


# -- reading a file as pip does ----------------------------------------------------------------

# pip/_internal/req/req_file.py::COMMENT_RE
_COMMENT = re.compile(r"(^|\s+)#.*$")
_ARCHIVES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz", ".tbz", ".txz", ".tar")
# name -> takes a value; pip/_internal/req/req_file.py::SUPPORTED_OPTIONS and SUPPORTED_OPTIONS_REQ
_LONG: dict[str, bool] = {
    "--index-url": True,
    "--extra-index-url": True,
    "--no-index": False,
    "--constraint": True,
    "--requirement": True,
    "--editable": True,
    "--find-links": True,
    "--no-binary": True,
    "--only-binary": True,
    "--prefer-binary": False,
    "--require-hashes": False,
    "--pre": False,
    "--trusted-host": True,
    "--use-feature": True,
    "--hash": True,
    "--config-settings": True,
    "--global-option": True,
}
_SHORT = {"-i": "--index-url", "-c": "--constraint", "-r": "--requirement", "-e": "--editable", "-f": "--find-links"}
_ALIASES = {"--index": "--index-url", "--extra-index": "--extra-index-url"}


def join_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, logical line), as ``pip/_internal/req/req_file.py::join_lines``.

    A line ending in ``\\`` continues on the next; a comment line ends a continuation.
    """
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.endswith("\\") or _COMMENT.match(line):
            if _COMMENT.match(line):
                line = " " + line  # so that the comment is removed after joining
            if pending:
                out.append((first, "".join([*pending, line])))
                pending = []
            else:
                out.append((number, line))
        else:
            if not pending:
                first = number
            pending.append(line.strip("\\"))
    if pending:
        out.append((first, "".join(pending)))
    return out


def strip_comment(line: str) -> str:
    return _COMMENT.sub("", line).strip()


def _split_args_options(line: str) -> tuple[str, str]:
    """``pip/_internal/req/req_file.py::break_args_options``: words up to the first ``-word``."""
    words = line.split()
    for index, word in enumerate(words):
        if word.startswith("-"):
            return " ".join(words[:index]), " ".join(words[index:])
    return " ".join(words), ""


def _parse_options(text: str, path: Path, number: int, where: str) -> list[Option]:
    try:
        tokens = shlex.split(text)
    except ValueError as exc:  # "No closing quotation"
        raise UsageError(f"{where}: cannot split the options ({exc})", hint="close the quote") from None
    out: list[Option] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            name = _ALIASES.get(name, name)
            attached: str | None = value if eq else None
        elif token.startswith("-") and len(token) >= 2 and token[:2] in _SHORT:
            name = _SHORT[token[:2]]
            attached = token[2:] or None
        else:
            out.append(Option("(ignored)", token, path, number))  # pip's option parser drops it too
            continue
        takes_value = _LONG.get(name)
        if takes_value is None:
            out.append(Option("(unknown)", token, path, number))
            continue
        if not takes_value:
            out.append(Option(name, None, path, number))
            continue
        if attached is None:
            if index >= len(tokens):
                raise UsageError(f"{where}: {name} needs a value", hint=f"write `{name} VALUE`")
            attached = tokens[index]
            index += 1
        out.append(Option(name, attached, path, number))
    return out


def _is_url(text: str) -> bool:
    return "://" in text.split("@")[0] or text.startswith("file:")


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~", "\\")) or "/" in text or "\\" in text


def _is_path(text: str) -> bool:
    """pip also takes a local folder or an archive on a line of its own.

    As ``pip/_internal/req/constructors.py::_get_url_from_path``: ``name @ …/x.whl`` is a
    requirement (a name before the ``@``), ``./dist/x.whl`` and ``../lib`` are paths.
    """
    left, at, _ = text.partition("@")
    if at and left.strip() and not _looks_like_path(left.strip()):
        return False
    return _looks_like_path(text) or text.endswith(_ARCHIVES)


def _entry(path: Path, number: int, text: str, opts: list[Option], where: str, constraint: bool) -> Entry:
    hashes = tuple(o.value for o in opts if o.name == "--hash" and o.value)
    others = tuple(o for o in opts if o.name != "--hash")
    # pip/_internal/req/constructors.py::install_req_from_line: a URL or path line has its marker after "; "
    head = text.split(" ;")[0].split("; ")[0].strip()
    if _is_url(head):
        return Entry(path, number, text, "url", None, hashes, others, constraint)
    if _is_path(head.split(";")[0]):
        return Entry(path, number, text, "path", None, hashes, others, constraint)
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        reason = mask_credentials(str(exc).splitlines()[0] if str(exc) else "unreadable")
        raise UsageError(
            f"{where}: {_clip(mask_credentials(text))!r} is not a valid requirement ({_clip(reason, 160)})",
            hint="write NAME[EXTRAS] SPECIFIER ; MARKER, as pip takes it",
        ) from None
    return Entry(path, number, text, "requirement", req, hashes, others, constraint)


def parse_text(text: str, path: Path, *, constraint: bool = False, label: str | None = None) -> list[Line]:
    """The logical lines of requirements ``text`` read from ``path`` (includes not followed).

    ``label`` names the place in messages (default ``PATH:LINE``). Raises ``UsageError``.
    """
    lines: list[Line] = []
    for number, raw in join_lines(text):
        line = strip_comment(raw)
        if not line:
            continue
        where = f"{label or path}:{number}"
        args, option_text = _split_args_options(line)
        opts = _parse_options(option_text, path, number, where) if option_text else []
        if args:
            lines.append(Line(path, number, line, entry=_entry(path, number, args, opts, where, constraint)))
            continue
        include: Include | None = None
        entry: Entry | None = None
        file_opts: list[Option] = []
        for opt in opts:
            if opt.name in ("--requirement", "--constraint") and opt.value is not None and include is None:
                include = Include("-r" if opt.name == "--requirement" else "-c", opt.value, _include_path(path, opt))
            elif opt.name == "--editable" and opt.value is not None and entry is None:
                entry = Entry(path, number, opt.value, "editable", None, (), (), constraint)
            else:
                file_opts.append(opt)
        lines.append(Line(path, number, line, entry=entry, options=tuple(file_opts), include=include))
    return lines


def portable(line: Line) -> str:
    """``line`` as it reads from another folder: ``-r``/``-c`` files and a ``--find-links`` folder
    made absolute against the line's own file, as pip resolves them
    (``pip/_internal/req/req_file.py::handle_option_line``); requirement paths stay relative to the cwd."""
    if line.include is not None:
        if line.include.path is None:
            return line.text
        return f"{line.include.flag} {shlex.quote(str(line.include.path.absolute()))}"
    if line.entry is not None or not line.options:
        return line.text
    moved = False
    words: list[str] = []
    for opt in line.options:
        value = opt.value
        if opt.name == "--find-links" and value and "://" not in value and (line.path.parent / value).exists():
            value, moved = str((line.path.parent / value).absolute()), True
        if opt.name.startswith("("):  # an unknown or stray word: as written
            words.append(shlex.quote(value or ""))
        else:
            words.append(opt.name if value is None else f"{opt.name} {shlex.quote(value)}")
    return " ".join(words) if moved else line.text


def _include_path(path: Path, opt: Option) -> Path | None:
    """pip joins a nested file to the including file's folder; a URL is fetched by pip, not here."""
    value = opt.value or ""
    if _is_url(value):
        return None
    return path.parent / value


def read_text(path: Path, what: str = "requirements file") -> str:
    """A file's text (UTF-8, a BOM dropped); ``UsageError`` naming the file when it cannot be read."""
    from doctor import files

    try:
        return files.read_text(path, MAX_BYTES)
    except files.Unreadable as exc:
        if exc.missing:
            raise UsageError(f"{what} {path} does not exist") from None
        reason = f"larger than {MAX_BYTES // (1024 * 1024)} MiB" if exc.too_large else exc.reason
        reason = f"it {reason}" if reason.startswith("is ") else reason
        raise UsageError(f"{what} {path} cannot be read: {reason}") from None


def parse_file(path: Path, *, constraint: bool = False) -> list[Line]:
    """The logical lines of one requirements file (its includes are not followed)."""
    return parse_text(read_text(path), path, constraint=constraint)


class _Loader:
    """Follows includes from one root: each file once, cycles noted, depth and count bounded."""

    def __init__(self, out: Requirements) -> None:
        self.out = out
        self.seen: set[Path] = set()
        self.stack: list[Path] = []

    def load(self, path: Path, *, constraint: bool, depth: int, origin: str | None) -> None:
        key = _resolved(path, origin)
        if key in self.stack:
            self.out.notes.append(f"{origin}: {path.name} is already being read (a cycle): not read again")
            return
        if key in self.seen:
            return
        if depth > MAX_DEPTH:
            raise UsageError(f"{origin}: includes nested more than {MAX_DEPTH} files deep", hint="flatten them")
        if len(self.seen) >= MAX_FILES:
            raise UsageError(f"{origin}: more than {MAX_FILES} included files", hint="merge some of them")
        self.seen.add(key)
        self.out.files.append(path)
        self.stack.append(key)
        try:
            try:
                lines = parse_file(path, constraint=constraint)
            except UsageError as exc:
                if origin is None:
                    raise
                raise UsageError(f"{origin} includes it: {exc.message}", hint=exc.hint) from None
            self.lines(lines, path.name, constraint=constraint, depth=depth)
        finally:
            self.stack.pop()

    def lines(self, lines: list[Line], name: str, *, constraint: bool, depth: int) -> None:
        for line in lines:
            self.out._raw.append(line.text)
            where = f"{name}:{line.number}"
            for opt in line.options:
                self._option(opt, where)
            if line.include is not None:
                inc = line.include
                if inc.path is None:
                    self.out.notes.append(
                        f"{where}: {inc.flag} {mask_credentials(inc.target)}: a remote file, not read"
                    )
                    continue
                # pip: -r inside a constraints file adds requirements; -c always adds constraints
                nested = inc.flag == "-c"
                self.load(inc.path, constraint=nested, depth=depth + 1, origin=where)
                if nested:
                    self.out.notes.append(
                        f"{where}: constraints of {inc.path.name}: judged where a requirement names them"
                    )
                continue
            if line.entry is not None:
                self._entry(line.entry, where, constraint)

    def _option(self, opt: Option, where: str) -> None:
        self.out.options.append(opt)
        if opt.name == "(unknown)":
            self.out.notes.append(f"{where}: option {mask_credentials(opt.value or '')} is unknown to pip: ignored")
        elif opt.name == "(ignored)":
            self.out.notes.append(f"{where}: {mask_credentials(opt.value or '')!r} after the options: ignored")
        else:
            self.out.notes.append(f"{where}: option {opt.display} kept for the installer, not judged")

    def _entry(self, entry: Entry, where: str, constraint: bool) -> None:
        self.out.entries.append(entry)
        if entry.kind == "requirement" and entry.requirement is not None:
            if not constraint:
                self.out.requirements.append(entry.requirement)
            return
        what = {"editable": "an editable install", "path": "a local path", "url": "a URL"}[entry.kind]
        self.out.notes.append(f"{where}: {entry.display} is {what}: installed by fix, not judged")


def _resolved(path: Path, origin: str | None) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):  # a loop of symlinks, a NUL byte: not a path the OS takes
        where = f"{origin}: " if origin else ""
        raise UsageError(f"{where}{_clip(str(path))!r} does not name a readable file") from None


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- environment.yml -----------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    import yaml

    from doctor.parsers.yaml_load import BoundedLoader, yaml_error

    text = read_text(path, "environment file")
    try:
        return yaml.load(text, Loader=BoundedLoader)  # a SafeLoader subclass, aliases bounded: safe
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc, "fix the YAML of the environment file") from None
    except RecursionError:  # PyYAML composes recursively: thousands of nested '[' exhaust the stack
        raise UsageError(f"{path}: nested too deeply to read") from None


# conda's MatchSpec: name, then a version ("=1.26" and "1.26" are fuzzy: 1.26.*; "==1.26" is exact)
_CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(?P<rest>.*)$")


def conda_requirement(dep: str) -> tuple[str, str | None] | None:
    """(name, pip specifier or None) of a conda dependency such as ``conda-forge::numpy=1.26``."""
    match = _CONDA_SPEC.match(dep.strip().split("::")[-1].strip())
    if not match:
        return None
    name, rest = match.group("name"), match.group("rest").replace(" ", "")
    if not rest or rest in ("*", "=*", "==*"):
        return name, None
    if rest.startswith("=="):
        version = rest[2:].split("=")[0]  # a build string follows a second "="
        return name, f"=={version}"
    if rest.startswith(("<", ">", "!", "~")):
        return name, rest
    version = rest.lstrip("=").split("=")[0]
    if not version:
        return name, None
    return name, f"=={version}" if version.endswith("*") else f"=={version.rstrip('.')}.*"


def _load_environment_yml(path: Path) -> Requirements:
    data = _load_yaml(path)
    deps = data.get("dependencies", []) if isinstance(data, dict) else None
    if not isinstance(deps, list):
        raise UsageError(f"{path}: expected a mapping with a 'dependencies' list (conda's environment.yml format)")
    out = Requirements(path, files=[path])
    for index, dep in enumerate(deps or [], 1):
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            _pip_section(path, dep["pip"], out)
        elif isinstance(dep, str):
            out._raw.append(dep)
            _conda_dependency(path, dep, out)
        elif dep is None:
            continue
        else:
            from doctor.parsers.yaml_load import describe  # YAML's one describer (PyYAML loads only here)

            raise UsageError(f"{path}: dependency {index} is {describe(dep)}, neither a string nor a 'pip:' list")
    return out


def _pip_section(path: Path, items: list[Any], out: Requirements) -> None:
    """conda hands the ``pip:`` items to pip as a file in the environment.yml's folder: read them so."""
    lines = []
    for number, item in enumerate(items, 1):
        if isinstance(item, (dict, list)):
            from doctor.parsers.yaml_load import describe

            raise UsageError(f"{path}: pip item {number} is {describe(item)}, not a requirement string")
        if item is not None:
            lines.append(str(item))
    parsed = parse_text("\n".join(lines), path, label=f"{path} (pip:)")
    out.pip_section.extend(parsed)
    _Loader(out).lines(parsed, f"{path.name} (pip:)", constraint=False, depth=1)


def _conda_dependency(path: Path, dep: str, out: Requirements) -> None:
    spec = conda_requirement(dep)
    if spec is None:
        out.notes.append(f"{path.name}: conda dependency {_clip(mask_credentials(dep))!r} not judged")
        return
    name, specifier = spec
    if name == "python":
        out.python = specifier.lstrip("=").removesuffix(".*") if specifier else None
        return
    if name == "pip":
        return
    try:
        req = Requirement(name + (specifier or ""))
    except InvalidRequirement:
        out.notes.append(f"{path.name}: conda dependency {_clip(mask_credentials(dep))!r} not judged")
        return
    out.entries.append(Entry(path, 0, str(req), "requirement", req))
    out.requirements.append(req)


def load_requirements(path: Path) -> Requirements:
    """Parse a pip requirements file (its includes too) or a conda environment.yml; ``UsageError`` on bad input."""
    path = Path(path)
    if path.suffix in {".yml", ".yaml"}:
        return _load_environment_yml(path)
    out = Requirements(path)
    _Loader(out).load(path, constraint=False, depth=0, origin=None)
    return out


def requirement_files(paths: list[Path] | tuple[Path, ...]) -> list[Path]:
    """The given files and every file they include with ``-r``/``-c``, each once, in reading order."""
    out: list[Path] = []
    keys: set[Path] = set()
    for given in paths:
        for path in load_requirements(Path(given)).files:
            key = _resolved(path, None)
            if key not in keys:
                keys.add(key)
                out.append(path)
    return out
