"""What is secret in a line of text, and how it is hidden: the one masking module.

Used by the report's single masking pass (``doctor.render.mask.mask_report``), by the lines fix prints
while it works (``doctor.fix.progress``), by what a dashboard's answers are quoted with
(``doctor.head.dashboard``) and by the requirements reader (``doctor.local.requirements``), so every
place hides a URL's credentials by the same rule (pip's ``redact_netloc``: ``user:pass@`` becomes
``user:***@``, a bare ``TOKEN@`` becomes ``***@``, ssh's login name stays).

Known secret values are masked longest first, so a secret that contains a shorter one never leaves
its ends showing (``aa***bb``).
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping

from doctor.text import sanitize

# scheme://userinfo@ : the userinfo ends at the last "@" before the path, query or fragment.
URL_AUTH = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<auth>[^\s/?#]*)@")
ENV_REF = re.compile(r"^\$\{[A-Z0-9_]+\}$")  # pip expands ${VAR} itself: a reference, not a secret


def login_scheme(scheme: str) -> bool:
    """ssh's user (``git@github.com``) is a login name, not a token."""
    return "ssh" in scheme.lower()


def mask_credentials(text: str) -> str:
    """``text`` with every URL's password (or token-as-user) replaced by ``***``.

    As pip's ``redact_netloc``: ``user:pass@`` becomes ``user:***@``; a user alone
    (``https://TOKEN@github.com``) becomes ``***@``, except over ssh.
    """

    def sub(match: re.Match[str]) -> str:
        scheme, auth = match.group("scheme"), match.group("auth")
        user, colon, _ = auth.partition(":")
        if colon:
            return f"{scheme}{user}:{MASK}@"
        if login_scheme(scheme) or not user:
            return match.group(0)
        return f"{scheme}{MASK}@"

    return URL_AUTH.sub(sub, text)


MASK = "***"
# Known secret values shorter than this are not masked: "ray" or "true" would turn into *** everywhere.
MIN_SECRET = 4
# Environment variables whose values are secrets whatever raydoctor knows of them; such values are
# masked only from this length on (`GIT_AUTH_ENABLED=true` must not turn every "true" into ***).
SECRET_ENV_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|AUTH", re.I)
MIN_ENV_SECRET = 8

_NOT_MASKED = r"(?!\*\*\*)"
_VALUE = r"(?:'[^']*'|\"[^\"]*\"|[^\s'\"`|;&,)]+)"
# `--redis-password=x`, `--auth-token x`, `--secret-key 'x y'` (not `--password --other`).
_SECRET_FLAG = re.compile(
    r"(?<![\w-])(--[\w-]*(?:password|passwd|token|secret|key)[\w-]*)(=|[ \t]+)"
    + _NOT_MASKED
    + r"(?!-)("
    + _VALUE
    + ")",
    re.I,
)
# `password: x`, `RAY_AUTH_TOKEN=x`, `"redis_password": "x"`.
_SECRET_PAIR = re.compile(
    r"(\b[\w.-]*(?:password|passwd|token|secret)[\w.-]*[\"']?\s*[:=]\s*[\"']?)" + _NOT_MASKED + r"([^\s'\"`|,;]+)",
    re.I,
)
_BEARER = re.compile(r"(\bBearer\s+)" + _NOT_MASKED + r"([^\s'\"`|]+)", re.I)


def secret_env_values(environ: Mapping[str, str] | None) -> frozenset[str]:
    """The values of this run's environment variables whose names look secret."""
    if not environ:
        return frozenset()
    return frozenset(
        v.strip() for k, v in environ.items() if SECRET_ENV_NAME.search(k) and len(v.strip()) >= MIN_ENV_SECRET
    )


def ordered_secrets(secrets: Iterable[str]) -> list[str]:
    return sorted({s for s in secrets if s and len(s) >= MIN_SECRET and s != MASK}, key=len, reverse=True)


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """One string: control characters stripped, known secrets and secret-shaped text masked."""
    return mask_ordered(text, ordered_secrets(secrets))


def mask_ordered(text: str, ordered: list[str]) -> str:
    text = sanitize(text, multiline=True)
    for secret in ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = mask_credentials(text)
    if "--" in text:
        text = _SECRET_FLAG.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _SECRET_PAIR.sub(lambda m: m.group(1) + MASK, text)
    return _BEARER.sub(lambda m: m.group(1) + MASK, text)
