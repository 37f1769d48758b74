"""`ray start` command lines: the one option table and the one parser.

Everything in raydoctor that reads a `ray start` line goes through here: the
compose loader (what the head publishes, its GCS port), the cluster-file
readers (``--num-gpus`` of a ``ray up`` config, KubeRay's ``rayStartParams``)
and the lint rules (typos, removed and deprecated options, bad values).

The table is versioned: it holds every option the ``start`` command of Ray 2.9
through 2.60 takes (``python/ray/scripts/scripts.py``, its ``@click.option``
list, hidden options included since click accepts them, plus the logging
options every Ray CLI command takes from
``ray/autoscaler/_private/cli_logger.py::add_click_logging_options``), each
with the release it came in (``OptionSpec.since``), and ``REMOVED`` says which
release dropped an option and what replaced it. It is written from that source,
not copied: the value kind per option and the releases are all raydoctor
needs. ``option_at`` answers for one release (a head's Ray) or, with none, for
any release of the table; ``beyond_table`` says when a release is outside it.

Read from the published wheels' ``scripts.py``: 2.9.3, 2.20.0, 2.35.0, 2.40.0,
2.41.0, 2.42.0, 2.43.0, 2.44.0, 2.45.0, 2.46.0, 2.47.0, 2.47.1, 2.48.0, 2.49.2,
2.52.1, 2.54.0, 2.55.0, 2.56.0, 2.60.0, and the click command itself of 2.9.3,
2.24.0, 2.35.0, 2.44.1, 2.49.2 and 2.60.0 (``start.params``). Each change lies
between two adjacent releases read, so its ``since`` is exact; an option that
came and went again between two releases read (inside 2.9.3-2.40.0,
2.48.0-2.54.0 or 2.56.0-2.60.0) would be missing.

Values of secret-looking options (``--*password*``, ``--*token*``,
``--*secret*``, ``--*key*``) never leave this module unmasked through
``display``/``masked_words``: a remedy that shows a corrected line shows ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.version import Version

from doctor.parsers.shell import SHELL_OPERATORS, split_shell, unwrap_shells

__all__ = [
    "MASK",
    "OPTIONS",
    "REMOVED",
    "LABELS_PAIRS_SINCE",
    "TABLE_NEWEST",
    "TABLE_OLDEST",
    "VALUELESS",
    "OptionSpec",
    "RayStartCall",
    "RayStartLine",
    "RayStartOption",
    "Removal",
    "beyond_table",
    "find_ray_starts",
    "first_ray_start",
    "from_params",
    "is_secret_name",
    "labels_pairs",
    "mask_argv",
    "option_at",
    "options_at",
    "parse_ray_start",
    "ray_start_words",
]

MASK = "***"


@dataclass(frozen=True)
class OptionSpec:
    """How `ray start` takes one option: ``kind`` is the value it wants."""

    kind: str  # flag | count | int | port | float | bool | json | labels | str | choice
    choices: tuple[str, ...] = ()
    deprecated: str | None = None  # why, and what to use instead
    since: str | None = None  # the first release that takes it; None: every release of the table

    @property
    def valueless(self) -> bool:
        return self.kind in ("flag", "count")

    def arrived_after(self, ray: Version) -> str | None:
        """The release that brought the option where it is later than ``ray`` (whose `ray start` refuses it)."""
        return None if _at_least(_release_only(ray), self.since) else self.since


# The releases the table covers: Ray 2.9 to 2.60 (every patch of each), read as the module docstring says.
TABLE_OLDEST = "2.9"
TABLE_NEWEST = "2.60"

# From 2.45 `ray start --labels` takes "key1=val1,key2=val2" (ray/_private/label_utils.py::
# parse_node_labels_string), falling back to the JSON object earlier releases take only.
LABELS_PAIRS_SINCE = "2.45"

# Every option of `ray start` in Ray 2.9-2.60 (python/ray/scripts/scripts.py, `start`); one that later
# releases dropped is also in REMOVED, which says from when.
OPTIONS: dict[str, OptionSpec] = {
    "--node-ip-address": OptionSpec("str"),
    "--address": OptionSpec("str"),
    "--port": OptionSpec("port"),
    "--node-name": OptionSpec("str"),
    # The password (and, from 2.41, the user) of the external Redis that makes the GCS fault tolerant:
    # `RAY_REDIS_ADDRESS=host:port ray start --head --redis-password PASSWORD` (Ray's own
    # doc/source/ray-core/fault_tolerance/gcs.rst; KubeRay's rayStartParams redis-password). Current, not
    # deprecated: dropping it breaks a fault-tolerant head.
    "--redis-username": OptionSpec("str", since="2.41"),
    "--redis-password": OptionSpec("str"),
    "--redis-shard-ports": OptionSpec("str"),
    "--object-manager-port": OptionSpec("port"),
    "--node-manager-port": OptionSpec("port"),
    "--gcs-server-port": OptionSpec("port", deprecated="Ray ignores it; set the GCS port with --port"),
    "--min-worker-port": OptionSpec("port"),
    "--max-worker-port": OptionSpec("port"),
    "--worker-port-list": OptionSpec("str"),
    "--ray-client-server-port": OptionSpec("port"),
    "--memory": OptionSpec("int"),
    "--object-store-memory": OptionSpec("int"),
    "--redis-max-memory": OptionSpec("int"),
    "--num-cpus": OptionSpec("int"),
    "--num-gpus": OptionSpec("int"),
    "--resources": OptionSpec("json"),
    "--head": OptionSpec("flag"),
    "--include-dashboard": OptionSpec("bool"),
    "--dashboard-host": OptionSpec("str"),
    "--dashboard-port": OptionSpec("port"),
    "--dashboard-agent-listen-port": OptionSpec("port"),
    "--dashboard-agent-grpc-port": OptionSpec("port"),
    "--dashboard-grpc-port": OptionSpec("port"),
    "--runtime-env-agent-port": OptionSpec("port"),
    "--block": OptionSpec("flag"),
    "--plasma-directory": OptionSpec("str"),
    "--object-spilling-directory": OptionSpec("str", since="2.45"),
    "--autoscaling-config": OptionSpec("str"),
    "--no-redirect-output": OptionSpec("flag"),
    "--plasma-store-socket-name": OptionSpec("str", deprecated="internal to Ray and going away; drop it"),
    "--raylet-socket-name": OptionSpec("str", deprecated="internal to Ray and going away; drop it"),
    "--temp-dir": OptionSpec("str"),
    "--storage": OptionSpec("str"),
    "--system-config": OptionSpec("json"),
    "--enable-object-reconstruction": OptionSpec("flag"),
    "--metrics-export-port": OptionSpec("port"),
    "--no-monitor": OptionSpec("flag"),
    "--tracing-startup-hook": OptionSpec("str"),
    "--proxy-server-url": OptionSpec("str", since="2.55"),
    "--ray-debugger-external": OptionSpec("flag"),
    "--disable-usage-stats": OptionSpec("flag"),
    "--labels": OptionSpec("labels"),
    "--labels-file": OptionSpec("str", since="2.45"),
    "--include-log-monitor": OptionSpec("bool", since="2.41"),
    "--enable-resource-isolation": OptionSpec("flag", since="2.45"),
    "--cgroup-path": OptionSpec("str", since="2.45"),
    "--system-reserved-cpu": OptionSpec("float", since="2.45"),
    "--system-reserved-memory": OptionSpec("int", since="2.45"),
    "--log-style": OptionSpec("choice", ("auto", "record", "pretty")),
    "--log-color": OptionSpec("choice", ("auto", "false", "true")),
    "--verbose": OptionSpec("count"),
    "-v": OptionSpec("count"),
}


@dataclass(frozen=True)
class Removal:
    """An option `ray start` no longer takes: what replaced it (None: nothing) and from which release."""

    instead: str | None
    since: str | None = None  # the first release without it; None: before every release of the table


# Options `ray start` dropped. Those with a ``since`` are in OPTIONS too (releases before take them);
# the rest were gone before Ray 2.9.
REMOVED: dict[str, Removal] = {
    "--redis-address": Removal("--address"),
    "--redis-port": Removal("--port"),
    "--include-webui": Removal("--include-dashboard"),
    "--webui-host": Removal("--dashboard-host"),
    "--internal-config": Removal("--system-config"),
    "--num-redis-shards": Removal(None),
    "--redis-max-clients": Removal(None),
    "--huge-pages": Removal(None),
    "--load-code-from-local": Removal(None),
    "--java-worker-options": Removal(None),
    "--code-search-path": Removal(None),
    "--lru-evict": Removal(None),
    "--no-redirect-worker-output": Removal(None),
    "--include-java": Removal(None),
    "--redis-max-memory": Removal(None, since="2.44"),
    # Deprecated and ignored (or unused) before they went: dropping them changes nothing. --gcs-server-port
    # is not --port: Ray ignored it, so the GCS ran on --port's port all along.
    "--gcs-server-port": Removal(None, since="2.48"),
    "--dashboard-grpc-port": Removal(None, since="2.48"),
    "--plasma-store-socket-name": Removal(None, since="2.48"),
    "--raylet-socket-name": Removal(None, since="2.48"),
    "--storage": Removal(None, since="2.48"),
}


def _at_least(ray: Version, since: str | None) -> bool:
    return since is None or ray >= Version(since)


def option_at(name: str, ray: Version | None) -> OptionSpec | None:
    """How `ray start` of Ray ``ray`` takes ``name``, or None when it refuses it.

    With no release (the head's Ray unknown), how some release of the table takes it: an option
    any release of Ray 2.9-2.60 takes is never refused then. A release outside the table is judged
    as its nearest end (``beyond_table`` tells when).
    """
    spec = OPTIONS.get(name)
    if spec is None or ray is None:
        return spec
    gone = REMOVED.get(name)
    if spec.arrived_after(ray) or (gone is not None and gone.since and _at_least(_release_only(ray), gone.since)):
        return None
    return spec


def options_at(ray: Version | None) -> list[str]:
    """Every option `ray start` of Ray ``ray`` takes (with None: of any release of the table)."""
    return [name for name in OPTIONS if option_at(name, ray) is not None]


def beyond_table(ray: Version | None) -> str | None:
    """The end of the table a release lies past: ``TABLE_NEWEST`` for a newer Ray, ``TABLE_OLDEST``
    for an older one, None inside it (or for no release): there an option unknown to the table is
    not known to be refused."""
    if ray is None:
        return None
    minor = Version(".".join(str(n) for n in _release_only(ray).release[:2]))
    if minor > Version(TABLE_NEWEST):
        return TABLE_NEWEST
    if minor < Version(TABLE_OLDEST):
        return TABLE_OLDEST
    return None


def _release_only(ray: Version) -> Version:
    """``2.41.0rc1`` as ``2.41.0``: a release candidate takes the options of its release."""
    return Version(ray.base_version)


def labels_pairs(ray: Version | None) -> bool:
    """Whether `ray start --labels` of Ray ``ray`` takes ``key=value`` pairs (with None: some release does)."""
    return ray is None or _at_least(_release_only(ray), LABELS_PAIRS_SINCE)


# Options that take no value: the word after one of these is never its value.
VALUELESS = frozenset(name for name, spec in OPTIONS.items() if spec.valueless)

_SECRET_NAME = re.compile(r"pass(word|wd)|token|secret|key", re.IGNORECASE)

# rayStartParams values KubeRay passes as `--key=value` even when they read true/false
# (ray-operator/controllers/ray/common/pod.go::convertParamMap, specialParameterOptions).
_KUBERAY_VALUED_BOOLS = frozenset({"log-color", "include-dashboard"})


def is_secret_name(name: str) -> bool:
    """True for an option or variable name that looks like it holds a secret (password, token, key)."""
    return bool(_SECRET_NAME.search(name))


def mask_argv(words: Sequence[str]) -> tuple[list[str], set[str]]:
    """``words`` with every value of a secret-looking option as ``***``, and the values masked.

    Read from the words themselves, not from how a parser assigned them: ``--x=v``, and
    the word after a bare ``--x``, whatever option took it (``--num-gpus --redis-password
    VALUE`` leaves VALUE a stray word for click, and a secret still).
    """
    out: list[str] = []
    masked: set[str] = set()
    after_secret = False
    for word in words:
        if after_secret:
            after_secret = False
            if word and not (word.startswith("-") and len(word) > 1 and not is_secret_name(word)):
                masked.add(word)
                out.append(MASK)
                continue
        name, sep, value = word.partition("=")
        if name.startswith("-") and len(name) > 1 and is_secret_name(name):
            if sep:
                if value:
                    masked.add(value)
                out.append(f"{name}={MASK}")
                continue
            after_secret = True
        out.append(word)
    return out, masked


def _mask_word(word: str) -> str:
    """A value that is itself a secret option word (``--port --redis-password=x`` gives --port that
    value, as click does) keeps its name and loses its value."""
    name, sep, _ = word.partition("=")
    if sep and name.startswith("-") and is_secret_name(name):
        return f"{name}={MASK}"
    return word


@dataclass(frozen=True)
class RayStartOption:
    """One option of a `ray start` command line, as written."""

    word: str  # what was written, e.g. "--port=6379" or "--port"
    name: str  # "--port"
    value: str | None  # None when no value was given
    inline: bool  # True for the `--x=v` form

    @property
    def secret(self) -> bool:
        return is_secret_name(self.name)

    def words(self, *, masked: bool = False) -> list[str]:
        """The words this option takes on a command line (the value as ``***`` when masked and secret)."""
        value = self.value
        if masked and value is not None:
            value = MASK if self.secret else _mask_word(value)
        if value is None:
            return [self.word if not self.inline else self.name + "="]
        return [f"{self.name}={value}"] if self.inline else [self.name, value]

    def shown(self) -> str:
        """``--name=value`` for messages, the value masked when the option looks secret."""
        if self.value is None:
            return self.name
        return f"{self.name}={MASK if self.secret else _mask_word(self.value)}"


@dataclass
class RayStartLine:
    """`ray start` arguments split into options and stray positional words, as click would."""

    options: list[RayStartOption]
    positionals: list[str] = field(default_factory=list)
    # Where each positional was written: after how many options (kept so that the words come
    # back in their order, and a stray word that follows a secret-looking option stays masked).
    positional_after: list[int] = field(default_factory=list)

    def _after(self) -> list[int]:
        if len(self.positional_after) == len(self.positionals):
            return list(self.positional_after)
        return [len(self.options)] * len(self.positionals)

    def names(self) -> list[str]:
        return [o.name for o in self.options]

    def has(self, name: str) -> bool:
        return any(o.name == name for o in self.options)

    def value(self, name: str) -> str | None:
        """The last value given for ``name`` (click keeps the last); "" for a bare flag, None if absent."""
        found: str | None = None
        for opt in self.options:
            if opt.name == name:
                found = opt.value if opt.value is not None else ""
        return found

    def words(self, *, masked: bool = False) -> list[str]:
        """The line's words in the order written (options with ``***`` values when ``masked``)."""
        after = self._after()
        out: list[str] = []
        k = 0
        for index, opt in enumerate(self.options):
            while k < len(after) and after[k] <= index:
                out.append(self.positionals[k])
                k += 1
            out.extend(opt.words(masked=masked))
        return out + list(self.positionals[k:])

    def without(self, *names: str) -> RayStartLine:
        """This line with every ``--name=v``/``--name v`` of ``names`` removed."""
        keep = [o.name not in names for o in self.options]
        after = [sum(keep[:n]) for n in self._after()]
        return RayStartLine([o for o, k in zip(self.options, keep) if k], list(self.positionals), after)

    def with_options(self, *words: str, first: bool = False) -> RayStartLine:
        """This line with options added (``--x=v`` words), after ``--head`` when ``first``."""
        added = parse_ray_start(words).options
        options = list(self.options)
        after = self._after()
        if first:
            at = 1 if options[:1] and options[0].name == "--head" else 0
            options[at:at] = added
            after = [n + len(added) if n > at else n for n in after]
        else:
            options.extend(added)
        return RayStartLine(options, list(self.positionals), after)

    def display(self) -> str:
        """``ray start …`` as a user would write it, secret values as a bare ``***``."""
        return ray_start_words(mask_argv(self.words())[0], keep=(MASK,))

    def shown_positionals(self) -> list[str]:
        """The stray words, for messages: one that follows a secret-looking option word is ``***``."""
        if not self.positionals:
            return []
        return mask_argv(self.words())[0][-len(self.positionals) :]

    def secret_values(self) -> set[str]:
        """Values given to secret-looking options, however the words fell (see ``mask_argv``)."""
        found = {o.value for o in self.options if o.secret and o.value}
        return found | mask_argv(self.words())[1]


@dataclass
class RayStartCall:
    """One `ray start` invocation found in a command: its arguments and what follows it."""

    args: list[str]  # the words after `ray start`, up to the end of that shell command
    line: RayStartLine
    after: list[str]  # the shell commands that follow in the same script, as text


def ray_start_words(args: Sequence[str], *, keep: Sequence[str] = ()) -> str:
    """``ray start`` followed by ``args``, quoted for a POSIX shell (words ending in one of ``keep`` as they are)."""
    import shlex

    def quote(word: str) -> str:
        for tail in keep:
            if word.endswith(tail):
                return shlex.quote(word[: -len(tail)]) + tail if word != tail else word
        return shlex.quote(word)

    return " ".join(["ray", "start", *(quote(a) for a in args)])


def parse_ray_start(args: Iterable[str]) -> RayStartLine:
    """Split `ray start` arguments the way click does, knowing which options take no value.

    ``--x=v`` and ``--x v`` are one option; a word after a valueless option
    (``--head``, ``--block``, ``-vvv``...) is never its value; after an option
    of the table that takes one, the next word is its value, as click reads it;
    after an unknown option, the next word unless it looks like an option.
    """
    words = list(args)
    options: list[RayStartOption] = []
    positionals: list[str] = []
    after: list[int] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("-") and len(word) > 1 and word != "--":
            if "=" in word:
                name, value = word.split("=", 1)
                options.append(RayStartOption(word, name, value, True))
                continue
            if word in VALUELESS or re.fullmatch(r"-v+", word):
                options.append(RayStartOption(word, word, None, False))
                continue
            # click gives an option that takes a value the next word, whatever it looks like
            # (click/parser.py::_OptionParser._get_value_from_state); for an unknown option
            # the next word is its value unless it looks like an option, except for a
            # secret-looking one, whose value must never be mistaken for an option and shown.
            takes_next = word in OPTIONS or is_secret_name(word) or not _looks_like_option(words[i : i + 1])
            if i < len(words) and takes_next:
                options.append(RayStartOption(word, word, words[i], False))
                i += 1
            else:
                options.append(RayStartOption(word, word, None, False))
        else:
            positionals.append(word)
            after.append(len(options))
    return RayStartLine(options, positionals, after)


def _looks_like_option(rest: Sequence[str]) -> bool:
    return bool(rest) and rest[0].startswith("-") and len(rest[0]) > 1


def _words(command: str | Sequence[str]) -> list[str]:
    if isinstance(command, str):
        try:
            return unwrap_shells(split_shell(command, operators=True))
        except ValueError:
            return []
    return list(command)


def find_ray_starts(command: str | Sequence[str]) -> list[RayStartCall]:
    """Every `ray start` in a shell command (a string) or an argv (already split and unwrapped).

    A string is split as ``sh -c`` would and ``bash -c "..."`` wrappers are
    looked through; one with an unclosed quote holds no `ray start`.
    """
    words = _words(command)
    calls: list[RayStartCall] = []
    i = 0
    while i < len(words) - 1:
        if words[i + 1] == "start" and words[i].rsplit("/", 1)[-1] == "ray":
            args: list[str] = []
            j = i + 2
            while j < len(words) and words[j] not in SHELL_OPERATORS:
                args.append(words[j])
                j += 1
            calls.append(RayStartCall(args, parse_ray_start(args), _commands(words[j:])))
            i = j
        else:
            i += 1
    return calls


def first_ray_start(command: str | Sequence[str]) -> RayStartCall | None:
    calls = find_ray_starts(command)
    return calls[0] if calls else None


def _commands(words: Sequence[str]) -> list[str]:
    """The shell commands in ``words`` (which begin with an operator), as text."""
    out: list[str] = []
    current: list[str] = []
    for word in words:
        if word in SHELL_OPERATORS:
            if current:
                out.append(" ".join(current))
            current = []
        else:
            current.append(word)
    if current:
        out.append(" ".join(current))
    return out


def from_params(params: Mapping[Any, Any]) -> RayStartLine:
    """KubeRay's ``rayStartParams`` as the `ray start` options the operator passes.

    As ``ray-operator/controllers/ray/common/pod.go::convertParamMap`` does:
    ``key: "true"`` becomes the bare ``--key``, ``key: "false"`` is left out
    (except for ``log-color`` and ``include-dashboard``, which take the word),
    anything else becomes ``--key=value``.
    """
    options: list[RayStartOption] = []
    for key, raw in params.items():
        name = "--" + str(key)
        value = _param_text(raw)
        if value.lower() in ("true", "false") and str(key) not in _KUBERAY_VALUED_BOOLS:
            if value.lower() == "true":
                options.append(RayStartOption(name, name, None, False))
            continue
        options.append(RayStartOption(f"{name}={value}", name, value, True))
    return RayStartLine(options, [])


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    return "<" + type(value).__name__ + ">"  # a structure: KubeRay's API server refuses it anyway
