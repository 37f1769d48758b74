"""The Ray auth token where the cluster itself keeps it: a compose head, a KubeRay cluster's secret.

Consulted only when this machine has no token (``doctor.secrets.load_token``), the token may go to
the target (``doctor.target.token_withheld``), and the dashboard says its auth mode is ``token``
(``/api/authentication_mode`` is public: ``ray/dashboard/http_server_head.py``). So a cluster
without auth never sees a ``docker`` or ``kubectl`` call from raydoctor.

- **Compose**: ``docker exec <head container> ray get-auth-token``. Ray's CLI prints the token on
  stdout without a newline and the newline on stderr (``ray/scripts/scripts.py::get_auth_token``);
  without one it fails with "No authentication token found". The container is the one Compose made
  for the head service: ``container_name:`` where the file sets one, else the container labelled
  ``com.docker.compose.project``/``com.docker.compose.service`` (``docker ps --filter label=…``),
  else Compose's own name for it, ``<project>-<service>-1``.
- **KubeRay** (a RayCluster with ``authOptions`` mode token): the ``kubectl ray get token <cluster>``
  plugin, else the cluster's secret, which KubeRay names after the RayCluster and keeps the token in
  under the key ``auth_token`` (Ray's KubeRay guide, ``kuberay-auth.md``:
  ``kubectl get secrets <cluster> --template={{.data.auth_token}} | base64 -d``).

Every child runs through ``doctor.proc.run`` with a short limit and ``proc.child_env`` (no token in
its environment). The token never appears in what this module returns besides ``Token.value``.
"""

from __future__ import annotations

import base64
import binascii
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from doctor import proc
from doctor.secrets import Token
from doctor.text import sanitize

LIMIT_S = 5.0
# Compose's project name: lowercase letters, digits, '-' and '_' (compose-spec: "normalized").
_PROJECT_BAD = re.compile(r"[^a-z0-9_-]")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$")  # a container / Kubernetes object name


@dataclass(frozen=True)
class TokenSearch:
    """What the cluster-side search found, and what each place said (for the finding's details)."""

    token: Token | None = None
    tried: tuple[str, ...] = field(default_factory=tuple)


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return sanitize(line.strip())[:200]
    return ""


def _run(argv: list[str], environ: Mapping[str, str], timeout: float) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr); exit None when it could not run or ran past ``timeout``."""
    try:
        done = proc.run(argv, timeout=timeout, env=proc.child_env(environ), cap=64 * 1024)
    except proc.ProcTimeout:
        return None, "", f"no answer within {timeout:g} s"
    except OSError as exc:
        return None, "", str(exc.strerror or exc)
    return done.returncode, done.stdout, done.stderr


def _token_text(out: str) -> str | None:
    value = out.strip()
    if not value or any(ch.isspace() for ch in value) or len(value) > 4096:
        return None
    return value


def compose_project_name(project: Any, environ: Mapping[str, str]) -> str:
    """Compose's project name: ``COMPOSE_PROJECT_NAME``, else the compose file's folder, normalised."""
    name = environ.get("COMPOSE_PROJECT_NAME") or Path(project.path).resolve().parent.name
    return _PROJECT_BAD.sub("", name.lower()) or "default"


def from_compose(project: Any, environ: Mapping[str, str], timeout: float = LIMIT_S) -> TokenSearch:
    """``docker exec <head container> ray get-auth-token``, where a Docker engine answers."""
    docker = shutil.which("docker", path=environ.get("PATH"))
    if not docker:
        return TokenSearch(tried=("docker: no docker CLI on PATH",))
    head = project.head
    tried: list[str] = []
    container = head.raw.get("container_name") if isinstance(head.raw, dict) else None
    project_name = compose_project_name(project, environ)
    if not (isinstance(container, str) and _NAME_OK.match(container)):
        code, out, err = _run(
            [
                docker,
                "ps",
                "--filter",
                f"label=com.docker.compose.project={project_name}",
                "--filter",
                f"label=com.docker.compose.service={head.name}",
                "--format",
                "{{.Names}}",
            ],
            environ,
            timeout,
        )
        if code != 0:
            return TokenSearch(tried=(f"docker ps: {_first_line(err) or f'exit {code}'}",))
        names = [n.strip() for n in out.splitlines() if _NAME_OK.match(n.strip())]
        container = names[0] if names else f"{project_name}-{head.name}-1"
    argv_shown = f"docker exec {container} ray get-auth-token"
    code, out, err = _run([docker, "exec", container, "ray", "get-auth-token"], environ, timeout)
    value = _token_text(out) if code == 0 else None
    if value is None:
        tried.append(f"{argv_shown}: {_first_line(err) or (f'exit {code}' if code else 'printed no token')}")
        return TokenSearch(tried=tuple(tried))
    return TokenSearch(Token(value, argv_shown, from_cluster=True), tuple(tried))


def from_kuberay(cluster: Any, environ: Mapping[str, str], timeout: float = LIMIT_S) -> TokenSearch:
    """``kubectl ray get token <cluster>``, else the cluster's secret through ``kubectl get secret``."""
    kubectl = shutil.which("kubectl", path=environ.get("PATH"))
    if not kubectl:
        return TokenSearch(tried=("kubectl: no kubectl on PATH",))
    name = getattr(cluster, "name", None)
    if getattr(cluster, "kind", None) != "RayCluster" or not (isinstance(name, str) and _NAME_OK.match(name)):
        return TokenSearch(tried=("kubectl: the cluster file names no RayCluster whose secret could be read",))
    tried: list[str] = []
    namespace = getattr(cluster, "namespace", None)
    ns = ["-n", namespace] if isinstance(namespace, str) and _NAME_OK.match(namespace) else []
    shown = f"kubectl ray get token {name}"
    code, out, err = _run([kubectl, "ray", "get", "token", name, *ns], environ, timeout)
    value = _token_text(out) if code == 0 else None
    if value is not None:
        return TokenSearch(Token(value, shown, from_cluster=True))
    tried.append(f"{shown}: {_first_line(err) or f'exit {code}'}")
    shown = f"kubectl get secret {name} (key auth_token)"
    code, out, err = _run([kubectl, "get", "secret", name, *ns, "-o", "jsonpath={.data.auth_token}"], environ, timeout)
    if code == 0 and out.strip():
        try:
            value = _token_text(base64.b64decode(out.strip(), validate=True).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            value = None
        if value is not None:
            return TokenSearch(Token(value, shown, from_cluster=True), tuple(tried))
        tried.append(f"{shown}: the secret's auth_token is not a base64 token")
    else:
        tried.append(f"{shown}: {_first_line(err) or (f'exit {code}' if code else 'the secret has no auth_token')}")
    return TokenSearch(tried=tuple(tried))


def find_cluster_token(compose: Any, cluster: Any, environ: Mapping[str, str], timeout: float = LIMIT_S) -> TokenSearch:
    """The token from the cluster's own side: the compose head first, then a KubeRay cluster's secret."""
    tried: list[str] = []
    if compose is not None:
        found = from_compose(compose, environ, timeout)
        if found.token is not None:
            return found
        tried += found.tried
    if cluster is not None and getattr(cluster, "format", None) == "kuberay":
        found = from_kuberay(cluster, environ, timeout)
        if found.token is not None:
            return TokenSearch(found.token, tuple(tried) + found.tried)
        tried += found.tried
    return TokenSearch(tried=tuple(tried))
