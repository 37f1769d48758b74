"""A Report as Markdown fit to paste into a bug report or a chat message.

People asking for help paste what they see; what helps the person answering
is the versions on both sides, every finding with its fix, and how long
things took. What must never travel is a secret: the report reaching this
module has been through the one masking pass (``doctor.render.mask``), as it
has for every other renderer. ``redact=True`` also replaces host names, IP
addresses and the hosts of URLs with stable placeholders (``<host-1>``,
``<ip-1>``: the same host keeps its name, so the reader can still tell that
two lines talk about one machine) and the home directory with ``~``.
Loopback ``127.0.0.1``, ``localhost`` and the wildcard ``0.0.0.0`` stay: they
identify nobody and often are the finding.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Any, Mapping

from doctor.model import Report, Result, Status

__all__ = ["Redactor", "render_markdown"]

STATUS_LABEL = {
    Status.OK: "✓ ok",
    Status.WARN: "! warn",
    Status.FAIL: "✗ fail",
    Status.ERROR: "✗ error",
    Status.SKIP: "- skip",
}


def render_markdown(
    report: Report,
    *,
    redact: bool = False,
    environ: Mapping[str, str] | None = None,
    home: str | None = None,
    verbose: bool = False,
) -> str:
    """The whole (already masked) report as Markdown; with ``redact`` hosts and the home folder hidden too."""
    text = "\n".join(_lines(report, verbose)) + "\n"
    if redact:
        text = Redactor.for_report(report, environ, home).apply(text)
    return text


# --------------------------------------------------------------------------
# redaction


# scheme://[user[:***]@]host: the host after any userinfo.
_URL_HOST = re.compile(
    r"\b([a-z][a-z0-9+.-]*://(?:[^/\s@'\"`<>]*@)?)(\[[0-9A-Fa-f:.]+\]|[^/\s:'\"`<>()\[\]|,;@]+)", re.I
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])\[?([0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})\]?(?![\w:])")
_KEEP = {"127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "<host>"}
MIN_ENV_VALUE = 4  # as doctor.head.compose.MIN_SECRET_LEN


class Redactor:
    """Replace hosts and addresses by stable placeholders, and the home directory by ``~``."""

    def __init__(
        self,
        hosts: list[str] | None = None,
        home: str | None = None,
        *,
        env_values: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> None:
        self._names: dict[str, str] = {}
        self._counts = {"host": 0, "ip": 0}
        self.hosts = [h for h in dict.fromkeys(hosts or []) if h and h not in _KEEP]
        self.home = home.rstrip("/") if home else None
        # Values shorter than MIN_ENV_VALUE ("1", "on") are left: replacing them everywhere garbles the
        # report and hides nothing. Longest first, so a value inside another is never left half-shown.
        values = {v: k for k, v in (env_values or {}).items() if isinstance(v, str) and len(v) >= MIN_ENV_VALUE}
        self.env_values = sorted(values.items(), key=lambda kv: -len(kv[0]))
        self.user = user if user and user not in ("root",) and re.fullmatch(r"[\w.-]+", user) else None

    @classmethod
    def for_report(cls, report: Report, environ: Mapping[str, str] | None = None, home: str | None = None) -> Redactor:
        """Hosts the report may name: the target's, this machine's own name, and any URL's."""
        hosts: list[str] = []
        address = (report.target or {}).get("address") or {}
        if isinstance(address, dict) and address.get("host"):
            hosts.append(str(address["host"]))
        for name in _machine_names():
            hosts.append(name)
        env = os.environ if environ is None else environ
        if home is None:
            home = env.get("HOME") or str(Path.home())
        user = env.get("USER") or env.get("LOGNAME") or (Path(home).name if home else None)
        return cls(hosts, home, env_values=report.environment_values, user=user)

    def placeholder(self, value: str, kind: str) -> str:
        key = value.lower()
        if key not in self._names:
            self._counts[kind] += 1
            self._names[key] = f"<{kind}-{self._counts[kind]}>"
        return self._names[key]

    def apply(self, text: str) -> str:
        for value, name in self.env_values:  # before the home folder: a value may hold its path
            text = re.sub(r"(?<![\w])" + re.escape(value) + r"(?![\w])", f"<env-{name}>", text)
        if self.home and len(self.home) > 1:
            text = re.sub(re.escape(self.home) + r"(?![\w.-])", "~", text)
        if self.user:  # the user's name in another user-named folder (/Users/NAME, /mnt/c/Users/NAME), or NAME@host
            text = re.sub(r"(?<=/)" + re.escape(self.user) + r"(?=/|\b)(?![\w.-])", "<user>", text)
            text = re.sub(r"(?<![\w.-])" + re.escape(self.user) + r"(?=@)", "<user>", text)
        # Hosts of URLs first: they also name hosts that appear bare elsewhere.
        url_hosts = [m.group(2) for m in _URL_HOST.finditer(text)]
        text = _URL_HOST.sub(lambda m: m.group(1) + self._host(m.group(2)), text)
        text = _IPV4.sub(lambda m: self._ip(m.group(0)), text)
        text = _IPV6.sub(self._ipv6, text)
        names = [
            h
            for h in dict.fromkeys([*url_hosts, *self.hosts])
            if h not in _KEEP and not h.startswith("<") and not _is_ip(h.strip("[]"))
        ]
        patterns = {h: re.compile(r"(?<![\w.-])" + re.escape(h) + r"(?![\w-]|\.\w)") for h in names}
        found = {h: p.search(text) for h, p in patterns.items()}
        # Numbered in order of first appearance, replaced longest first (a.lan before a).
        for host in sorted((h for h in names if found[h]), key=lambda h: found[h].start()):  # type: ignore[union-attr]
            self.placeholder(host, "host")
        for host in sorted(names, key=len, reverse=True):
            if found[host]:
                text = patterns[host].sub(self.placeholder(host, "host"), text)
        return text

    def _host(self, host: str) -> str:
        bare = host.strip("[]")
        if bare in _KEEP or host.startswith("<"):
            return host
        if _is_ip(bare):
            return self.placeholder(bare, "ip")
        return self.placeholder(host, "host")

    def _ip(self, text: str) -> str:
        if text in _KEEP or not _is_ip(text):
            return text
        return self.placeholder(text, "ip")

    def _ipv6(self, match: re.Match[str]) -> str:
        candidate = match.group(1)
        if candidate in _KEEP or not re.search(r"[0-9A-Fa-f]", candidate) or not _is_ip(candidate):
            return match.group(0)
        return match.group(0).replace(candidate, self.placeholder(candidate, "ip"))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _machine_names() -> list[str]:
    """This machine's own names (no DNS lookup: a report must not hang on a resolver)."""
    names = []
    try:
        names.append(socket.gethostname())
    except OSError:
        pass
    try:
        names.append(os.uname().nodename)
    except (AttributeError, OSError):
        pass
    out = []
    for name in names:
        if name and name not in _KEEP:
            out.append(name)
            short = name.split(".", 1)[0]
            if short and short != name:
                out.append(short)
    return out


# --------------------------------------------------------------------------
# layout


# Text from a dashboard, a head, a job or a file is shown, never interpreted: no raw HTML, no image, no
# link (GitHub also links a bare ``http://…`` or ``www.…``: those go in code spans, which it never links),
# no emphasis, no table cell or block that the text itself opens.
_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]*://|www\.)\S+|\b[\w.+-]+@[\w-]+\.[\w.-]+")
# Escaped: what opens HTML, an image, a link, code, emphasis or strikethrough. Kept as they are: the
# mask "***" (a run of three asterisks), "_" inside a word (never emphasis), "|" outside a table.
_INLINE = re.compile(r"(\*\*\*|(?<=\w)_(?=\w))|([\\`*_\[\]<>!~&])")
_BLOCK_START = re.compile(r"^(?:[#>=+-]|\d{1,9}[.)])")  # a heading, quote, rule, list item if a line began so


def _escape(match: re.Match[str]) -> str:
    return match.group(1) or "\\" + match.group(2)


def _prose(text: Any, *, line_start: bool = False) -> str:
    """Any text as one line of Markdown that shows exactly it (see ``_URL``, ``_INLINE``); ``line_start``
    for text that begins a line, where ``# ``, ``> ``, ``- `` or ``1. `` would open a block."""
    line = " ".join(str(text).split())
    out = []
    last = 0
    for match in _URL.finditer(line):
        out.append(_INLINE.sub(_escape, line[last : match.start()]))
        out.append(_code(match.group()))
        last = match.end()
    out.append(_INLINE.sub(_escape, line[last:]))
    shown = "".join(out)
    start = _BLOCK_START.match(shown) if line_start else None
    return shown if start is None else shown[: start.end() - 1] + "\\" + shown[start.end() - 1 :]


def _cell(text: Any) -> str:
    """One Markdown table cell: no pipes, no newlines, nothing interpreted."""
    return _prose(text).replace("|", "\\|") or " "  # GitHub splits cells at a | even in a code span


def _code(text: Any) -> str:
    """A code span: nothing in it is interpreted (backticks become quotes, so none can end it early)."""
    body = " ".join(str(text).split()).replace("`", "'")
    return f"`{body}`"


def _fence(lines: list[str]) -> list[str]:
    """A fenced block longer than any run of backticks in ``lines``, so none of them can close it."""
    longest = max((len(run) for ln in lines for run in re.findall(r"`+", ln)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence, *lines, fence]


def _fact(head: dict[str, Any], key: str) -> tuple[str, str]:
    fact = head.get(key) if isinstance(head, dict) else None
    if not isinstance(fact, dict) or fact.get("value") in (None, ""):
        return "?", ""
    value = str(fact["value"])
    source = str(fact.get("source", ""))
    if fact.get("exact") is False:
        return f"{value} (a guess)", f"a guess: {source}"
    return value, source


def _verdict(report: Report) -> str:
    from doctor.render.text import summary_line

    return summary_line(report)


def _lines(report: Report, verbose: bool) -> list[str]:
    from doctor import __version__

    out = [f"## raydoctor {report.command} report", ""]
    if report.error:
        out += [
            f"**The {_prose(report.command)} could not run:** {_code(report.error)}",
            "",
            f"raydoctor {__version__} · exit code {report.exit_code}",
        ]
        return out
    out += [f"**{_verdict(report)}** · exit code {report.exit_code} · raydoctor {__version__}", ""]
    out += _versions(report)
    out += _findings(report, verbose)
    out += _timings(report)
    return out


def _versions(report: Report) -> list[str]:
    head, local, target = report.head or {}, report.local or {}, report.target or {}
    head_ray, ray_from = _fact(head, "ray")
    head_py, py_from = _fact(head, "python")
    source = ray_from if ray_from == py_from or not py_from else f"Ray: {ray_from}; Python: {py_from}"
    if not head:
        source = "not known"
    local_where = local.get("executable") or "?"
    if local.get("chosen_by"):
        local_where = f"{local_where} (chosen by {local['chosen_by']})"
    out = [
        "### Versions",
        "",
        "| | Ray | Python | from |",
        "|---|---|---|---|",
        f"| head | {_cell(head_ray)} | {_cell(head_py)} | {_cell(source)} |",
        f"| local | {_cell(local.get('ray') or ('not installed' if 'ray' in local else '?'))} | "
        f"{_cell(local.get('python') or '?')} | {_cell(local_where)} |",
        "",
    ]
    facts = []
    kind = target.get("kind")
    address = target.get("address") if isinstance(target.get("address"), dict) else None
    if address:
        facts.append(f"dashboard {_code(address.get('dashboard'))} (from {_prose(target.get('address_from') or '?')})")
    cluster = target.get("cluster_file")
    if isinstance(cluster, dict):
        facts.append(f"cluster file {_code(cluster.get('path'))} ({_prose(cluster.get('format'))})")
    elif target.get("compose"):
        facts.append(f"compose file {_code(target['compose'])}")
    if target.get("image"):
        facts.append(f"image {_code(target['image'])} (from {_prose(target.get('image_from') or '?')})")
    if facts:
        out.append(f"- target ({_prose(kind)}): " + "; ".join(facts))
    if head.get("auth_mode"):
        out.append(f"- head authentication: {_prose(head['auth_mode'])}")
    if head.get("cuda"):
        out.append(f"- head image CUDA: {_prose(head['cuda'])}")
    platform = " ".join(str(local[k]) for k in ("implementation", "system", "machine") if local.get(k))
    if platform:
        out.append(f"- local platform: {_prose(platform)}")
    if local.get("requirements"):
        out.append(f"- requirements: {_code(local['requirements'])}")
    for problem in head.get("problems") or []:
        out.append(f"- note on the head: {_prose(problem)}")
    if out[-1] != "":
        out.append("")
    return out


def _findings(report: Report, verbose: bool) -> list[str]:
    out = ["### Findings", "", "| | check | result | time |", "|---|---|---|---|"]
    for res in report.results:
        out.append(
            f"| {STATUS_LABEL[res.status]} | {_cell(res.title)} | {_cell(res.summary)} | {_ms(res.duration_s)} |"
        )
    out.append("")
    shown = [r for r in report.results if verbose or r.status in {Status.WARN, Status.FAIL, Status.ERROR}]
    for res in shown:
        out += _finding(res)
    return out


def _finding(res: Result) -> list[str]:
    out = [
        f"**{STATUS_LABEL[res.status]}: {_prose(res.title)}** ({_code(res.id)})",
        "",
        _prose(res.summary, line_start=True),
        "",
    ]
    if res.details:
        out += [f"- {_prose(d)}" for d in res.details] + [""]
    if res.remediation and res.status is not Status.OK:
        if res.remediation.text:
            out += [f"Fix: {_prose(res.remediation.text)}", ""]
        if res.remediation.commands:
            commands = [" ".join(c.split("\n")) for c in res.remediation.commands]  # one line each, in the fence
            out += [*_fence(commands), ""]
        for edit in res.remediation.edits:
            note = f" ({_prose(edit.note)})" if edit.note else ""
            out += [f"Edit {_code(edit.path)} at {_code(edit.place)}: {_code(edit.value)}{note}", ""]
    return out


def _timings(report: Report) -> list[str]:
    slow = sorted((r for r in report.results if r.duration_s > 0), key=lambda r: -r.duration_s)[:5]
    out = ["### Timings", "", f"- total: {report.duration_s:.2f} s for {len(report.results)} checks (run concurrently)"]
    if slow:
        out.append("- slowest: " + ", ".join(f"{_prose(r.title)} {_ms(r.duration_s)}" for r in slow))
    out.append("")
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"
