"""The team's settings in its repo: ``[tool.raydoctor]`` in ``pyproject.toml``, or ``raydoctor.toml``.

So onboarding is ``git clone …; raydoctor fix`` with no flags: the repo says where its cluster is.

Discovery, as ruff finds its configuration (``ruff_workspace/src/pyproject.rs::settings_toml``):
walk up from the current folder; in each folder ``raydoctor.toml`` (its keys at the top level)
wins over ``pyproject.toml``, and a ``pyproject.toml`` counts only when it has a
``[tool.raydoctor]`` table (one without it does not stop the walk, as a ``pyproject.toml``
without ``[tool.ruff]`` does not stop ruff's). The first folder with either file ends the walk;
files are never merged. The walk stops at the repository root (the first folder with a ``.git``),
else after the user's home folder (or at the filesystem root when the current folder is not under
home), so a settings file far above a project never applies. As git's ``safe.directory`` refuses a
repository another user owns, a settings file owned by another user, or one that any user can write,
is never applied: it is noted (``Applied.refused``) and the walk ends there.

Keys are the long option names (``address``, ``client-port``, ``compose``, ``env-dir``, …, see
``KEYS``); path values are relative to the file that names them. Precedence, per key: a flag
given on the command line, then the environment (``RAY_ADDRESS`` for the target), then the file,
then the option's default. The target is one choice: a target flag (``--address``, ``--compose``,
``--cluster-file``, ``--image``) or ``RAY_ADDRESS`` sets all of the file's target keys aside.
Trust (``doctor.trust``): a file's harmless keys apply at once; its sensitive keys
(``doctor.trust.SENSITIVE_KEYS``: what runs, where the token goes, what is read, uploaded, written or
deleted) apply only once the user trusts that very file (``raydoctor trust``). An untrusted file's
sensitive keys are set aside and named in one finding (``local.settings_trust``). An address from a
trusted file counts as named by the user for the token rule (``doctor.origin.NAMED_BY_USER``).

Confinement: every path a settings file names resolves inside the folder that holds the file (no
absolute path, ``~``, ``..`` or symlink that leaves it), trusted or not.

A malformed file, an unknown key or a value of the wrong type is a usage error (exit 2) in one
line naming the file and the key. ``apply_settings`` is called once per command, where the CLI
turns its arguments into options (``doctor.commands.common.options_from``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from doctor.errors import UsageError
from doctor.files import IS_A_DIRECTORY, Unreadable, read_bytes
from doctor.origin import Origin
from doctor.trust import SENSITIVE_KEYS, TrustState, digest, trust_state

SETTINGS_FILE = "raydoctor.toml"
PYPROJECT = "pyproject.toml"
ENV_FROM = {"address": "RAY_ADDRESS"}  # keys the environment can set, and the variable
TARGET_KEYS = ("address", "compose", "cluster-file", "image")
_TABLE_LINE = re.compile(rb"^\s*\[\s*tool\s*\.\s*raydoctor\s*[\].]", re.MULTILINE)
_MAX_BYTES = 1024 * 1024  # a settings file is a few lines; a bigger one is refused, never read whole


@dataclass(frozen=True)
class Key:
    """One setting: its name (the long option's), the TOML type it takes, whether it is a path."""

    name: str
    kind: str  # "str" | "int" | "number" | "path" | "python" (a path when it has a slash) | "str_or_bool"

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        return "--" + self.name


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("address", "str"),
        Key("client-port", "int"),
        Key("gcs-port", "int"),
        Key("compose", "path"),
        Key("cluster-file", "path"),
        Key("image", "str"),
        Key("python", "python"),
        Key("mode", "str"),
        Key("requirements", "path"),
        Key("timeout", "number"),
        Key("env-dir", "path"),
        Key("installer", "str"),
        # Options other commands (or other parts of raydoctor) add: known keys, passed to a command
        # that has the option and ignored by one that has not.
        Key("kernel", "str_or_bool"),
        Key("kernel-prefix", "path"),
        Key("python-source", "str"),
        Key("runtime-env", "path"),
    )
}
_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "number": "a number",
    "path": "a string (a path)",
    "python": "a string (a path or a command name)",
    "str_or_bool": "a string or true/false",
}


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


@dataclass(frozen=True)
class SettingsFile:
    """A settings file that was found and read; ``values`` are typed, their paths absolute."""

    path: Path
    values: dict[str, Any]
    table: str | None = None  # "tool.raydoctor" in a pyproject.toml, None in raydoctor.toml
    shadows: Path | None = None  # a pyproject.toml with [tool.raydoctor] in the same folder, not read
    sha256: str = ""  # of the bytes read (doctor.trust.digest): what `raydoctor trust` records

    @property
    def where(self) -> str:
        return str(self.path)


# -- finding and reading -------------------------------------------------------------


def _home(environ: Mapping[str, str]) -> Path | None:
    home = environ.get("HOME") or (environ.get("USERPROFILE") if os.name == "nt" else None)
    return Path(home).absolute() if home else None


def _read(path: Path) -> bytes | None:
    """The file's bytes, or None when there is no file there (a folder of that name is none either)."""
    try:
        return read_bytes(path, _MAX_BYTES)
    except Unreadable as exc:
        if exc.missing or exc.reason == IS_A_DIRECTORY:  # a folder of that name, in the walk
            return None
        if exc.too_large:
            raise UsageError(f"{path}: larger than 1 MiB; not a settings file raydoctor reads") from None
        raise UsageError(f"{path}: cannot read the settings file ({exc.reason})") from None


def _refusal(path: Path) -> str | None:
    """Why raydoctor will not read the settings file at ``path`` (git's ``safe.directory`` rule), or None."""
    if os.name == "nt":
        return None
    try:
        info = path.stat()
    except OSError:
        return None  # _read says what is wrong with it
    if info.st_uid != os.getuid():
        return f"{path} is owned by another user (uid {info.st_uid}): not read"
    if info.st_mode & 0o002:  # group-writable is a user's own file under umask 002 (Debian's private groups)
        return f"{path} can be written by any user (mode {oct(info.st_mode & 0o777)}): not read"
    return None


def _is_repo_root(folder: Path) -> bool:
    return os.path.lexists(folder / ".git")


def _parse(path: Path, data: bytes) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.9/3.10 only
        import tomli as tomllib
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text, so not TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise UsageError(f"{path}: not valid TOML (nested too deeply)") from None


def _pyproject_table(path: Path, data: bytes) -> dict[str, Any] | None:
    """``[tool.raydoctor]`` of a pyproject.toml, or None when it has none (then the walk goes on)."""
    if not _TABLE_LINE.search(data) and b"raydoctor" not in data:
        return None  # no mention at all: not parsed (the common case costs one read)
    try:
        doc = _parse(path, data)
    except UsageError:
        if _TABLE_LINE.search(data):
            raise  # a broken file that means to configure raydoctor: say so
        return None  # someone else's broken pyproject.toml is not ours to judge
    tool = doc.get("tool")
    if not isinstance(tool, dict) or "raydoctor" not in tool:
        return None
    table = tool["raydoctor"]
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.raydoctor] must be a table, not {_toml_type(table)}")
    return table


def find_settings(cwd: Path, environ: Mapping[str, str] | None = None) -> SettingsFile | None:
    """The settings file that applies in ``cwd`` (see the module's docstring), read and checked."""
    found, _ = find_settings_noting(cwd, environ)
    return found


def find_settings_noting(cwd: Path, environ: Mapping[str, str] | None = None) -> tuple[SettingsFile | None, list[str]]:
    """``find_settings``, and the files the walk refused to read (another user's, or writable by others)."""
    env = os.environ if environ is None else environ
    home = _home(env)
    folder = Path(cwd).absolute()
    while True:
        ours = folder / SETTINGS_FILE
        pyproject = folder / PYPROJECT
        data = _read(ours)
        if data is not None:
            refused = _refusal(ours)
            if refused:
                return None, [refused]
            py_data = _read(pyproject)
            shadows = pyproject if py_data is not None and _TABLE_LINE.search(py_data) else None
            return _settings(ours, _parse(ours, data), None, shadows, digest(data)), []
        py_data = _read(pyproject)
        if py_data is not None:
            table = _pyproject_table(pyproject, py_data)
            if table is not None:
                refused = _refusal(pyproject)
                if refused:
                    return None, [refused]
                return _settings(pyproject, table, "tool.raydoctor", None, digest(py_data)), []
        if _is_repo_root(folder) or (home is not None and folder == home) or folder.parent == folder:
            return None, []
        folder = folder.parent


def load_settings(path: Path) -> SettingsFile:
    """One named settings file (a ``raydoctor.toml``, or a ``pyproject.toml`` read for its table)."""
    path = Path(path).absolute()
    refused = _refusal(path)
    if refused:
        raise UsageError(refused, hint="make the file yours (chown) and not writable by all (chmod o-w)")
    data = _read(path)
    if data is None:
        raise UsageError(f"{path}: no such settings file")
    if path.name == PYPROJECT:
        table = _pyproject_table(path, data)
        return _settings(path, table or {}, "tool.raydoctor", None, digest(data))
    return _settings(path, _parse(path, data), None, None, digest(data))


def _settings(
    path: Path, table: Mapping[str, Any], prefix: str | None, shadows: Path | None, sha256: str = ""
) -> SettingsFile:
    values: dict[str, Any] = {}
    where = f"{path} [{prefix}]" if prefix else str(path)
    for name, value in table.items():
        key = KEYS.get(name)
        if key is None:
            hint = ""
            if name.replace("_", "-") in KEYS:
                hint = f" (did you mean {name.replace('_', '-')!r}? keys are the long option names)"
            raise UsageError(f"{where}: unknown key {name!r}{hint}; known keys: {', '.join(KEYS)}")
        values[name] = _typed(key, value, path, where)
    return SettingsFile(path, values, prefix, shadows, sha256)


def _typed(key: Key, value: object, path: Path, where: str) -> Any:
    """The value as the option takes it, paths made absolute against the file's folder."""
    kind = key.kind
    ok = {
        "str": isinstance(value, str),
        "path": isinstance(value, str),
        "python": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str_or_bool": isinstance(value, (str, bool)),
    }[kind]
    if not ok:
        raise UsageError(f"{where}: key {key.name!r} must be {_TYPE_WORDS[kind]}, not {_toml_type(value)} ({value!r})")
    if isinstance(value, str) and not value.strip() and kind != "str_or_bool":
        raise UsageError(f"{where}: key {key.name!r} is empty")
    if kind == "path" or (kind == "python" and isinstance(value, str) and _looks_like_path(value)):
        assert isinstance(value, str)
        p = _confined(key, value, path, where)
        return str(p) if kind == "python" else p  # --python takes a string (a path or a command name)
    return value


def _confined(key: Key, value: str, path: Path, where: str) -> Path:
    """``value`` joined to the file's folder, refused unless it stays inside that folder.

    No absolute path, no ``~``, no ``..`` and no symlink that leads out: a cloned repository's file
    must not name ``~/.ssh/id_ed25519`` as its requirements, ``..`` as its kernel folder, or a script
    elsewhere as the interpreter.
    """
    base = path.parent.absolute()
    refuse = f"{where}: key {key.name!r} = {value!r} leaves the folder that holds the file"
    hint = f"name a path inside {base}, or give --{key.name} on the command line"
    if "\0" in value:
        raise UsageError(f"{where}: key {key.name!r} contains a NUL character")
    if value.startswith("~") or Path(value).is_absolute() or os.path.isabs(value):
        raise UsageError(refuse, hint=hint)
    joined = base / value
    try:
        real_base = Path(os.path.realpath(base))
        real = Path(os.path.realpath(joined))
    except (OSError, ValueError):
        raise UsageError(refuse, hint=hint) from None
    if real != real_base and real_base not in real.parents:
        raise UsageError(refuse, hint=hint)
    return joined


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.startswith(("~", "."))


# -- which flags were given ------------------------------------------------------------

# Set on the parsed namespace by ``record_given`` (the CLI) and read by ``apply_settings``.
GIVEN_ATTR = "_given_options"
ACTIONS_ATTR = "_option_actions"
SOURCES_ATTR = "_settings_sources"


def _subparser_for(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]  # type: ignore[no-any-return]
    return None


def record_given(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Note on ``args`` which options the command line really gave (not argparse defaults), by parsing
    ``argv`` once more with every default set aside (``argparse.SUPPRESS``): what comes back was given."""
    sub = _subparser_for(parser, getattr(args, "command", None))
    if sub is None:
        return
    saved: list[tuple[argparse.Action, Any]] = []
    for p in (parser, sub):
        for action in p._actions:
            if action.dest != argparse.SUPPRESS and not isinstance(action, argparse._SubParsersAction):
                saved.append((action, action.default))
                action.default = argparse.SUPPRESS
    try:
        again = parser.parse_args(list(argv))
    except Exception:  # the first parse succeeded; never fail the command over this one
        return
    finally:
        for action, default in saved:
            action.default = default
    setattr(args, GIVEN_ATTR, frozenset(vars(again)) - {"command"})
    setattr(args, ACTIONS_ATTR, {a.dest: a for a in sub._actions if a.dest != argparse.SUPPRESS})


# -- applying ------------------------------------------------------------------------


@dataclass
class Applied:
    """Where each setting of one command came from: ``{key: {"value", "from"}}`` for the report."""

    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    file: SettingsFile | None = None
    address_from: str | None = None  # for TargetOptions: where a set address came from (for messages)
    address_origin: Origin | None = None  # the same, as a type: the token rule reads this
    trust: TrustState | None = None  # the file's trust, when a file was found
    withheld: dict[str, Any] = field(default_factory=dict)  # sensitive keys of an untrusted file, not applied
    refused: list[str] = field(default_factory=list)  # settings files the walk would not read, and why

    def untrusted(self) -> UntrustedSettings | None:
        """What an untrusted (or changed) file wanted and did not get, for the ``local.settings_trust`` finding."""
        if self.file is None or self.trust is None or (self.trust.applies and not self.refused):
            return None if not self.refused else UntrustedSettings(None, None, {}, tuple(self.refused))
        return UntrustedSettings(self.file.path, self.trust, dict(self.withheld), tuple(self.refused))


@dataclass(frozen=True)
class UntrustedSettings:
    """A settings file whose sensitive keys were set aside, or files the walk refused to read."""

    path: Path | None
    trust: TrustState | None
    withheld: dict[str, Any]
    refused: tuple[str, ...] = ()


def _shown(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_shown(v) for v in value]
    return value


def _for_action(key: Key, value: Any, action: argparse.Action | None, where: str) -> Any:
    """Judge a file's value by the option's own rules (its ``type`` and ``choices``), as a flag would be."""
    if action is None:
        return value
    if isinstance(value, bool):  # str_or_bool: `kernel = true` is `--kernel` alone, false is no --kernel
        return action.const if value and action.nargs == "?" else (None if not value else value)
    converted = value
    kind = action.type
    if kind is not None and kind is not Path and not isinstance(value, Path):
        try:
            converted = kind(str(value))  # type: ignore[operator]
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise UsageError(f"{where}: key {key.name!r}: {exc}") from None
    elif kind is Path and not isinstance(value, Path):
        converted = Path(str(value))
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(repr(c) for c in action.choices)
        raise UsageError(f"{where}: key {key.name!r} is {value!r}, not one of {choices}")
    return converted


def apply_settings(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    settings: SettingsFile | None = None,
    discover: bool = True,
    trusted: bool | None = None,
) -> Applied:
    """Fill ``args`` from the settings file where no flag was given; say where each value came from.

    Idempotent: a second call on the same ``args`` returns the first answer. ``settings`` names the
    file (tests); by default it is found from ``cwd``. A namespace the CLI did not parse (a caller
    building its own) counts every option that is not None as given. ``trusted`` overrides the
    trust record (tests, ``--trust-settings`` through ``args.trust_settings``).
    """
    done = getattr(args, SOURCES_ATTR, None)
    if isinstance(done, Applied):
        return done
    env = os.environ if environ is None else environ
    refused: list[str] = []
    if settings is None and discover:
        settings, refused = find_settings_noting(cwd or Path.cwd(), env)
    recorded = getattr(args, GIVEN_ATTR, None)
    given: frozenset[str] = (
        recorded
        if recorded is not None
        else frozenset(k for k, v in vars(args).items() if v is not None and not k.startswith("_"))
    )
    actions: dict[str, argparse.Action] = getattr(args, ACTIONS_ATTR, None) or {}
    file_values = dict(settings.values) if settings is not None else {}
    where = ""
    if settings is not None:
        where = f"{settings.path} [{settings.table}]" if settings.table else str(settings.path)
    target_flag = any(KEYS[k].dest in given for k in TARGET_KEYS if hasattr(args, KEYS[k].dest))
    env_target = ENV_FROM["address"] if env.get(ENV_FROM["address"]) else None
    applied = Applied(file=settings, refused=refused)
    if settings is not None:
        for_run = bool(getattr(args, "trust_settings", False)) if trusted is None else trusted
        applied.trust = (
            TrustState.TRUSTED_FOR_RUN
            if for_run
            else (TrustState.UNTRUSTED if trusted is False else trust_state(settings.path, settings.sha256, env))
        )
        if not applied.trust.applies:
            for name in [k for k in file_values if k in SENSITIVE_KEYS]:
                applied.withheld[name] = _shown(file_values.pop(name))
    for key in KEYS.values():
        if not hasattr(args, key.dest):
            continue  # an option this command does not have: the key is for another command
        current = getattr(args, key.dest)
        if key.dest in given:
            source, value = key.flag, current
        elif key.name in TARGET_KEYS and (target_flag or env_target):
            if key.name == "address" and env_target and not target_flag:
                source, value = env_target, env[env_target]
            else:
                source, value = "default", current
        elif key.name in file_values:
            value = _for_action(key, file_values[key.name], actions.get(key.dest), where)
            setattr(args, key.dest, value)
            source = str(settings.path) if settings else "default"
            if key.name == "address":
                applied.address_from = f"settings file {settings.path if settings else ''}"
                applied.address_origin = Origin.SETTINGS
        else:
            source, value = "default", current
        applied.sources[key.name] = {"value": _shown(value), "from": source}
    setattr(args, SOURCES_ATTR, applied)
    return applied


def settings_line(sources: Mapping[str, Mapping[str, Any]]) -> str:
    """The ``-v`` line: which settings are not defaults, and where each came from."""
    files = {str(i.get("from")) for i in sources.values() if str(i.get("from")) not in ("default", *ENV_FROM.values())}
    file = next((f for f in files if not f.startswith("--")), None)
    parts = [
        f"{key}={info.get('value')} ({'from ' + str(info.get('from'))})"
        for key, info in sources.items()
        if info.get("from") != "default"
    ]
    head = f"from {file}" if file else "none from a settings file"
    return f"settings: {head}; " + ("; ".join(parts) if parts else "every option at its default")
