"""A project's runtime_env, read as ``ray job submit --runtime-env`` reads it, and its ``working_dir``
packed as Ray packs it, without importing Ray.

The packing mirrors ``ray/_private/runtime_env/packaging.py``:

* ``_dir_travel``: a depth-first walk from the folder; at every path, a ``.gitignore`` in it (unless
  ``RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1``, ``_get_gitignore``) is pushed onto the exclude list, the path
  is skipped when any exclude matches it, and its children are walked otherwise;
* ``_get_excludes`` / ``_get_gitignore``: patterns matched with pathspec's ``gitwildmatch`` (Ray
  vendors pathspec 0.8.1 in ``ray/_private/thirdparty/pathspec``) against the path relative to the
  folder the patterns belong to;
* ``_zip_files``: an uncompressed zip (``ZipFile(..., "w", strict_timestamps=False)``: ZIP_STORED) of
  every file and every empty folder, named relative to the working_dir;
* ``get_uri_for_directory`` / ``_hash_directory``: ``gcs://_ray_pkg_<hex>.zip``, the hex an 8-byte xor
  of the SHA-1 of every path's relative name and, for a file, its content (``_xor_bytes`` keeps the
  shorter operand's length, and the seed is ``b"0" * 8``);
* ``GCS_STORAGE_MAX_SIZE`` (``RAY_max_grpc_message_size``, else ``GRPC_CPP_MAX_MESSAGE_SIZE`` = 512 MiB in
  ``ray/_private/ray_constants.py``): a package of that size or more is refused
  (``_store_package_in_gcs``); ``FILE_SIZE_WARNING`` (10 MiB): Ray warns per file.

raydoctor's own rules come on top of Ray's (``left_out_because``): the working_dir is usually a repository,
and what raydoctor uploads leaves this machine. Never uploaded, whatever ``.gitignore`` and ``excludes``
say: names that look like secrets (``.env*``, private keys, credentials files), ``.git/`` and the
credential folders (``.aws/``, ``.ssh/``, ...); anything behind a symlink that leads out of the
working_dir (Ray follows them: ``cfg -> ../home/.aws`` would upload the user's keys); anything that is
not a regular file or a folder (a FIFO, a device such as ``/dev/zero``, a socket), judged by its type and
never opened. What was left out is listed (names and reasons, never contents). ``confine`` refuses a
working_dir outside the project.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping

from doctor.errors import UsageError
from doctor.files import special_kind
from doctor.text import ascii_int

MIB = 1024 * 1024
GCS_STORAGE_MAX_SIZE_DEFAULT = 512 * MIB  # ray/_private/ray_constants.py::GRPC_CPP_MAX_MESSAGE_SIZE
FILE_SIZE_WARNING = 10 * MIB  # ray/_private/runtime_env/packaging.py::FILE_SIZE_WARNING
LIMIT_ENV = "RAY_max_grpc_message_size"
IGNORE_GITIGNORE_ENV = "RAY_RUNTIME_ENV_IGNORE_GITIGNORE"
RAY_PKG_PREFIX = "_ray_pkg_"
MAX_RUNTIME_ENV_BYTES = 1 * MIB  # a --runtime-env file; Ray's own are a few lines
MAX_GITIGNORE_BYTES = 4 * MIB  # a working_dir's .gitignore; a larger one is not read
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
MAX_ENTRIES = 200_000  # paths walked before raydoctor gives up on a folder (Ray itself has no bound)

# Names that look like secrets: never uploaded (raydoctor's rule; Ray uploads them). Matched on one name.
_SECRET_NAMES = (
    re.compile(r"\.env(\..+)?|\.envrc"),
    re.compile(r".*\.(pem|key|p12|pfx)", re.IGNORECASE),
    re.compile(r"id_(rsa|dsa|ecdsa|ed25519)(\..*)?"),
    re.compile(r".*credentials.*", re.IGNORECASE),
    re.compile(r"\.netrc|\.pypirc|\.npmrc|\.git-credentials"),
)
# Folders (or files) never uploaded whole: the repository's history and config (a token in a remote URL),
# and the places tools keep credentials.
_SECRET_FOLDERS = frozenset({".git", ".aws", ".ssh", ".gnupg", ".azure", ".gcloud"})
# A file under a given folder name: Docker's and kubectl's credentials.
_SECRET_FILES_IN = frozenset({(".docker", "config.json"), (".kube", "config")})


# -- the runtime_env ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeEnv:
    """A runtime_env dict and where it came from; relative paths resolve from ``base`` (the cwd, as Ray's
    ``upload_working_dir_if_needed`` resolves them from the submitting process's folder)."""

    data: dict[str, Any]
    source: str
    base: Path
    path: Path | None = None  # the file it was read from; None for the default runtime_env

    @property
    def working_dir(self) -> Path | None:
        value = self.data.get("working_dir")
        if not isinstance(value, str) or "://" in value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base / path

    @property
    def remote_working_dir(self) -> str | None:
        value = self.data.get("working_dir")
        return value if isinstance(value, str) and "://" in value else None

    @property
    def excludes(self) -> list[str]:
        value = self.data.get("excludes") or []
        return [str(v) for v in value] if isinstance(value, list) else []

    def pip_lines(self) -> list[str] | None:
        """The ``pip`` field as requirement lines: a list, ``{"packages": [...]}``, or a requirements file."""
        pip = self.data.get("pip")
        if pip is None:
            return None
        if isinstance(pip, dict):
            pip = pip.get("packages") or []
        if isinstance(pip, str):  # a requirements file, read by the one parser
            from doctor.local.requirements import read_text

            path = Path(pip).expanduser()
            path = path if path.is_absolute() else self.base / path
            return read_text(path, "runtime_env pip file").splitlines()
        return [str(item) for item in pip] if isinstance(pip, list) else []

    def pip_options(self) -> list[str] | None:
        """``pip.pip_install_options``: what the head's ``pip install`` gets in place of Ray's defaults
        (``ray/_private/runtime_env/pip.py``: ``--disable-pip-version-check --no-cache-dir``); None when not
        a list of strings, which Ray refuses (``ray/_private/runtime_env/validation.py::parse_and_validate_pip``)."""
        pip = self.data.get("pip")
        value = pip.get("pip_install_options") if isinstance(pip, dict) else None
        if value is None:
            return []
        return list(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else None

    def index_urls(self) -> list[str]:
        """The indexes the head's pip is told to use: ``--index-url``/``-i``/``--extra-index-url`` in
        ``pip_install_options`` or as lines of the pip list (Ray writes the list to a requirements file
        for ``pip install -r``, and pip reads options there)."""
        words: list[str] = []
        for item in (self.pip_options() or []) + (self.pip_lines() or []):
            words += item.split()
        found: list[str] = []
        for i, word in enumerate(words):
            flag, eq, value = word.partition("=")
            if flag in _INDEX_FLAGS:
                url = value if eq else (words[i + 1] if i + 1 < len(words) else "")
                if url and url not in found:
                    found.append(url)
        return found


_INDEX_FLAGS = ("--index-url", "-i", "--extra-index-url")


def load_runtime_env(path: Path, base: Path) -> RuntimeEnv:
    """``--runtime-env FILE``: YAML or JSON (``ray job submit --runtime-env`` reads YAML, JSON being YAML);
    a bad file is one ``UsageError``."""
    from doctor import files
    from doctor.parsers.yaml_load import BoundedLoader, describe

    try:
        raw = files.read_bytes(path, MAX_RUNTIME_ENV_BYTES)
    except files.Unreadable as exc:
        if exc.too_large:
            raise UsageError(f"--runtime-env {path}: larger than 1 MiB; a runtime_env is a few lines") from None
        raise UsageError(f"--runtime-env {path}: cannot read it: {exc.reason}") from None
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text) if path.suffix == ".json" else None
    except ValueError as exc:
        raise UsageError(f"--runtime-env {path}: not valid JSON: {exc}") from None
    except RecursionError:
        raise UsageError(f"--runtime-env {path}: not valid JSON: nested too deeply") from None
    if data is None:
        import yaml

        try:
            data = yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader with bounds
        except yaml.YAMLError as exc:
            raise UsageError(f"--runtime-env {path}: not valid YAML: {' '.join(str(exc).split())[:200]}") from None
        except RecursionError:
            raise UsageError(f"--runtime-env {path}: not valid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise UsageError(f"--runtime-env {path}: a runtime_env is a mapping, not {describe(data)}")
    for key, kind in (("working_dir", str), ("excludes", list), ("pip", (list, dict, str))):
        if key in data and data[key] is not None and not isinstance(data[key], kind):  # type: ignore[arg-type]
            raise UsageError(f"--runtime-env {path}: {key} must be a {getattr(kind, '__name__', 'list')}")
    return RuntimeEnv(data, f"--runtime-env {path}", base, Path(path))


def default_runtime_env(base: Path, requirement_lines: list[str] | None) -> RuntimeEnv:
    """``{"working_dir": ".", "pip": <requirements>}``: what a project without a runtime_env file submits."""
    data: dict[str, Any] = {"working_dir": "."}
    if requirement_lines:
        data["pip"] = requirement_lines
    return RuntimeEnv(data, "default (working_dir . and the requirements file)", base)


def confine(env: RuntimeEnv) -> str | None:
    """Why ``env``'s local working_dir may not be uploaded (one line naming it), or None when it may.

    The project is the folder of the runtime_env file (and the current folder too when the file lies
    inside it: ``conf/re.yaml`` with ``working_dir: .``), or the current folder for the default
    runtime_env. A working_dir that resolves (symlinks followed) outside it, or into a credentials
    folder inside it (``.ssh``, ``.git``, ...), is refused: nothing from there is uploaded.
    """
    root = env.working_dir
    if root is None:
        return None
    base = os.path.realpath(env.base)
    if env.path is None:
        allowed = [base]
    else:
        folder = os.path.realpath((env.base / env.path).parent)
        allowed = [folder, base] if _inside(folder, base) else [folder]
    real = os.path.realpath(root)
    inside = next((a for a in allowed if _inside(real, a)), None)
    if inside is None:
        return (
            f"working_dir {root} lies outside the project ({allowed[0]}): raydoctor uploads nothing from outside "
            "the folder of the file that names it"
        )
    parts = Path(real).relative_to(inside).parts
    for end in range(1, len(parts) + 1):
        why = secret_name(parts[:end])
        if why:
            return f"working_dir {root} is {'/'.join(parts[:end])} or inside it ({why}): raydoctor does not upload it"
    return None


def package_limit(environ: Mapping[str, str]) -> tuple[int, str]:
    """Ray's package limit as this process's environment sets it, and where that came from."""
    value = environ.get(LIMIT_ENV, "").strip()
    number = ascii_int(value)
    if number is not None and number > 0:
        return number, f"{LIMIT_ENV}={value} in this environment"
    return GCS_STORAGE_MAX_SIZE_DEFAULT, f"Ray's default (GCS_STORAGE_MAX_SIZE; {LIMIT_ENV} not set here)"


# -- the walk -----------------------------------------------------------------------------


def _spec(lines: list[str]) -> Any:
    import pathspec

    with warnings.catch_warnings():  # pathspec >= 1 names gitwildmatch deprecated; Ray still uses it
        warnings.simplefilter("ignore", DeprecationWarning)
        return pathspec.PathSpec.from_lines("gitwildmatch", lines)


def _matcher(root: Path, lines: list[str]) -> Callable[[Path], bool]:
    spec = _spec(lines)

    def match(p: Path) -> bool:
        return bool(spec.match_file(str(p.absolute().relative_to(root))))

    return match


def _gitignore(path: Path, environ: Mapping[str, str]) -> Callable[[Path], bool] | None:
    """``packaging.py::_get_gitignore``: the ``.gitignore`` directly in ``path``, unless turned off."""
    if environ.get(IGNORE_GITIGNORE_ENV, "0") == "1":
        return None
    path = path.absolute()
    ignore_file = path / ".gitignore"
    if not ignore_file.is_file():
        return None
    from doctor import files

    try:
        data = files.read_bytes(ignore_file, MAX_GITIGNORE_BYTES)
    except files.Unreadable:
        return None  # swapped for a FIFO or a device since, or huge: judged without it
    return _matcher(path, io.TextIOWrapper(io.BytesIO(data), errors="replace").readlines())  # as open("r") reads


class PackError(Exception):
    """The folder cannot be walked the way Ray walks it (a loop, too many paths, unreadable)."""


@dataclass(frozen=True)
class LeftOut:
    """A path raydoctor does not upload although Ray would: its name in the zip and why (never its content)."""

    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.name} ({self.why})"


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or lies below it (both real, absolute paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def secret_name(parts: tuple[str, ...]) -> str | None:
    """Why a path (its parts relative to the working_dir) looks like a secret; None when it does not."""
    if not parts:
        return None
    name = parts[-1]
    if name in _SECRET_FOLDERS:
        return "the repository's history and config" if name == ".git" else "a credentials folder"
    if len(parts) >= 2 and (parts[-2], name) in _SECRET_FILES_IN:
        return "a credentials file"
    if any(p.fullmatch(name) for p in _SECRET_NAMES):
        return "looks like a secret"
    return None


def left_out_because(path: Path, root_real: str, parts: tuple[str, ...]) -> str | None:
    """raydoctor's reason not to upload ``path`` (Ray would), or None: judged by name and by ``lstat``/
    ``stat`` type, the path never opened."""
    why = secret_name(parts)
    if why:
        return why
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            real = os.path.realpath(path)
            if not _inside(real, root_real):
                return "a symlink that leads out of the working_dir"
            info = os.stat(real)
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    kind = special_kind(info.st_mode)
    return f"{kind}, never read" if kind else None


def walk(
    root: Path, excludes: list[str], environ: Mapping[str, str], left_out: list[LeftOut] | None = None
) -> Iterator[Path]:
    """Every path Ray's ``_dir_travel`` hands its handler, in its order (folders before their contents),
    less what ``left_out_because`` keeps here (appended to ``left_out``; not walked into)."""
    root = root.absolute()
    root_real = os.path.realpath(root)
    stack_excludes: list[Callable[[Path], bool]] = [_matcher(root, excludes)]
    seen_dirs: set[tuple[int, int]] = set()
    count = 0

    def travel(path: Path) -> Iterator[Path]:
        nonlocal count
        count += 1
        if count > MAX_ENTRIES:
            raise PackError(f"more than {MAX_ENTRIES:,} paths under {root}: exclude the bulk with 'excludes'")
        if path != root:  # Ray's rules first (an excluded path is not ours to mention), then raydoctor's
            if any(match(path) for match in stack_excludes):
                return
            why = left_out_because(path, root_real, path.relative_to(root).parts)
            if why is not None:
                if left_out is not None:
                    folder = not path.is_symlink() and path.is_dir()
                    left_out.append(LeftOut(_arcname(path.relative_to(root)) + ("/" if folder else ""), why))
                return
        ignore = _gitignore(path, environ)
        if ignore is not None:
            stack_excludes.append(ignore)
        try:
            if not any(match(path) for match in stack_excludes):
                yield path
                if path.is_dir():
                    st = path.stat()
                    key = (st.st_dev, st.st_ino)
                    if key in seen_dirs:  # Ray would recurse until RecursionError
                        raise PackError(f"{path} links back to a folder above it: Ray cannot pack a loop")
                    seen_dirs.add(key)
                    for sub in path.iterdir():
                        yield from travel(sub)
                    seen_dirs.discard(key)
        finally:
            if ignore is not None:
                stack_excludes.pop()

    try:
        yield from travel(root)
    except OSError as exc:
        raise PackError(f"cannot read {exc.filename or root}: {exc.strerror or exc}") from None


# -- the package --------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One zip member: its name in the zip, its size, whether it is an (empty) folder."""

    path: Path
    name: str
    size: int
    is_dir: bool


@dataclass
class Package:
    """A working_dir as Ray would pack it, less what raydoctor never uploads (``left_out``)."""

    root: Path
    paths: list[Path]  # every path walked, folders too (what the hash covers)
    members: list[Member]  # what the zip holds
    gitignore: bool  # .gitignore files were honoured
    excludes: list[str] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)  # Ray would upload them; raydoctor does not

    @property
    def files(self) -> list[Member]:
        return [m for m in self.members if not m.is_dir]

    @property
    def content_size(self) -> int:
        return sum(m.size for m in self.members)

    @property
    def zip_size(self) -> int:
        return stored_zip_size(self.members)

    def largest(self, n: int = 5) -> list[Member]:
        return sorted(self.files, key=lambda m: (-m.size, m.name))[:n]

    def over_warning(self) -> list[Member]:
        return [m for m in self.largest(len(self.files)) if m.size >= FILE_SIZE_WARNING]

    def uri(self) -> str:
        return f"gcs://{RAY_PKG_PREFIX}{directory_hash(self.root, self.paths).hex()}.zip"


def pack(root: Path, excludes: list[str], environ: Mapping[str, str]) -> Package:
    """Walk ``root`` as Ray's ``_zip_files`` does; nothing is read but names and sizes. Raises PackError."""
    root = root.absolute()
    if not root.is_dir():
        raise PackError(f"working_dir {root} is not a folder")
    left_out: list[LeftOut] = []
    paths = list(walk(root, list(excludes), environ, left_out))
    members: list[Member] = []
    for path in paths:
        try:
            if path.is_file():
                members.append(Member(path, _arcname(path.relative_to(root)), path.stat().st_size, False))
            elif path.is_dir() and next(path.iterdir(), None) is None:
                members.append(Member(path, _arcname(path.relative_to(root)) + "/", 0, True))
        except OSError as exc:
            raise PackError(f"cannot read {path}: {exc.strerror or exc}") from None
    gitignore = environ.get(IGNORE_GITIGNORE_ENV, "0") != "1"
    return Package(root, paths, members, gitignore, list(excludes), left_out)


def _arcname(rel: Path) -> str:
    """``ZipInfo.from_file``'s name: os separators as ``/``, no leading slash."""
    name = os.path.normpath(str(rel)).replace(os.sep, "/")
    return name.lstrip("/")


_LOCAL_HEADER = 30  # zipfile.sizeFileHeader
_CENTRAL_HEADER = 46  # zipfile.sizeCentralDir
_END_RECORD = 22  # zipfile.sizeEndCentDir
_ZIP64_END = 56 + 20  # zipfile.sizeEndCentDir64 + sizeEndCentDir64Locator
_ZIP64_LIMIT = (1 << 31) - 1  # zipfile.ZIP64_LIMIT


def stored_zip_size(members: list[Member]) -> int:
    """The size of the uncompressed zip Ray writes for these members, to the byte (members under 2 GiB).

    Each member costs a local header and a central directory entry, both carrying its name, plus its
    bytes; the archive ends with the end-of-central-directory record (``zipfile.ZipFile._write_end_record``).
    """
    total = _END_RECORD
    for m in members:
        name = len(m.name.encode("utf-8", errors="surrogateescape"))
        extra = 20 if m.size * 1.05 > _ZIP64_LIMIT else 0  # zipfile's zip64 extra for a large member
        total += _LOCAL_HEADER + name + extra + m.size + _CENTRAL_HEADER + name + extra
    if len(members) > 0xFFFF or total > _ZIP64_LIMIT:
        total += _ZIP64_END
    return total


def open_member(path: Path, root: Path) -> BinaryIO:
    """``path`` opened for reading only if it is still a regular file inside ``root``.

    The walk judged it, but a name can be swapped for a FIFO, a device or a symlink leading out before
    it is read: the real path is checked again, opened without following a last symlink, without
    blocking, and judged on the descriptor. Raises PackError.
    """
    real = os.path.realpath(path)
    if not _inside(real, os.path.realpath(root)):
        raise PackError(f"{path} now leads out of the working_dir; not uploaded")
    try:
        fd = os.open(real, os.O_RDONLY | _O_NONBLOCK | _O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PackError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PackError(f"{path} is no longer a regular file; not uploaded")
    return os.fdopen(fd, "rb")


def write_zip(package: Package, dest: Path) -> int:
    """The package as Ray's ``_zip_files`` writes it (each file through ``open_member``); returns its size."""
    with zipfile.ZipFile(dest, "w", strict_timestamps=False) as handle:
        for m in package.members:
            if m.is_dir:
                handle.write(m.path, m.name)
                continue
            info = zipfile.ZipInfo.from_file(m.path, m.name, strict_timestamps=False)
            with open_member(m.path, package.root) as src, handle.open(info, "w") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
    return dest.stat().st_size


def _xor(left: bytes, right: bytes) -> bytes:
    """``packaging.py::_xor_bytes``: the shorter length wins (``zip``), an empty side gives the other."""
    if left and right:
        return bytes(a ^ b for a, b in zip(left, right))
    return left or right


def directory_hash(root: Path, paths: list[Path]) -> bytes:
    """``packaging.py::_hash_directory`` over the walked paths: names relative to ``root``, file contents."""
    value = b"0" * 8
    for path in paths:
        sha1 = hashlib.sha1()
        sha1.update(str(path.relative_to(root)).encode())
        if not path.is_dir():
            try:
                with open_member(path, root) as handle:  # never a FIFO or a device swapped in since the walk
                    for chunk in iter(lambda: handle.read(4096 * 1024), b""):
                        sha1.update(chunk)
            except (OSError, PackError):
                pass  # Ray skips the contents of a file it cannot open
        value = _xor(value, sha1.digest())
    return value


def mib(n: float) -> str:
    """``packaging.py::_mib_string``."""
    return f"{n / MIB:.2f}MiB"


def is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False
