"""Ask Docker Engine what an image really holds, where an engine answers.

Only images already present locally are inspected: raydoctor never pulls
(that would send traffic the user did not ask for, and cost gigabytes).
Answers are cached per image id, so a second check costs one ``inspect``.
Without a Docker engine (as on CI machines) every function returns None
quietly.

An image name comes from the command line or from a file someone else wrote,
and Docker reads its arguments as options until the image: a name such as
``-v=/:/host`` would be an option. So every name is checked against Docker's
own reference grammar (``validate_image``) before it reaches an argv, and the
image stands after all of raydoctor's options.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from doctor import proc
from doctor.errors import UsageError
from doctor.local.docker_cli import ask
from doctor.probe_code import DISTRIBUTIONS

PROBE = (
    "import json, platform\n" + DISTRIBUTIONS + "try:\n"
    "    ray = metadata.version('ray')\n"
    "except Exception:\n"
    "    ray = None\n"
    "print(json.dumps({'python': platform.python_version(), 'ray': ray, 'packages': distributions()}))\n"
)
CACHE_MAX_BYTES = 16 * 1024 * 1024  # raydoctor's own cache of image facts; a bigger one is ignored
MAX_PACKAGES = 5000  # an image's distributions kept; the answer itself is capped at 1 MiB (_run)
_DIST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")  # PEP 508 names, bounded


@dataclass(frozen=True)
class ImageFacts:
    image_id: str
    python: str
    ray: str | None
    packages: Mapping[str, str] = field(default_factory=dict)  # canonical name -> version, as the image has them


# Docker's reference grammar, as github.com/distribution/reference/regexp.go writes it:
#   reference := name [ ":" tag ] [ "@" digest ]
#   name      := [domain "/"] remote-name, remote-name := path-component ["/" path-component]*
#   path-component := alpha-numeric [separator alpha-numeric]*, lowercase; separator := [_.]|__|[-]+
#   domain    := host [":" port], host := domain-name | "[" IPv6 "]"
#   tag       := [\w][\w.-]{0,127}, digest := algorithm ":" hex (at least 32 hex digits)
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?")
NAME_MAX = 255  # distribution/reference: NameTotalLengthMax


def image_problem(image: str) -> str | None:
    """Why ``image`` is not an image reference Docker accepts, or None when it is one."""
    if not image:
        return "it is empty"
    if image.startswith("-"):
        return "it starts with '-', so Docker would read it as an option"
    if any(ch.isspace() or ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in image):
        return "it holds whitespace or control characters"
    match = IMAGE_REFERENCE.fullmatch(image)
    if match is None:
        if image != image.lower() and IMAGE_REFERENCE.fullmatch(image.lower()):
            return "repository names are lowercase"
        return "it is not [registry[:port]/]name[:tag][@digest]"
    name = match.group("name")
    if len(name) > NAME_MAX:
        return f"its name is longer than {NAME_MAX} characters"
    first, slash, _ = name.partition("/")
    # Only a first part with "." or ":" (or localhost) is a registry (distribution/reference/normalize.go::
    # splitDockerDomain); any other first part is a path component, lowercase like the rest.
    if slash and not ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if re.fullmatch(_PATH_COMPONENT, first) is None:
            return "repository names are lowercase"
    return None


def validate_image(image: str, what: str = "--image") -> str:
    """``image`` when Docker's reference grammar accepts it; else ``UsageError`` naming the value."""
    problem = image_problem(image)
    if problem is not None:
        shown = image if len(image) <= 80 else image[:79] + "…"
        raise UsageError(
            f"{what} {shown!r} is not a Docker image reference: {problem}",
            hint="e.g. rayproject/ray:2.49.2-py312-cpu",
        )
    return image


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "raydoctor"


def _run(args: list[str], timeout: float) -> proc.Completed | None:
    """Docker, bounded, without the cluster's token in its environment; None when it cannot run."""
    try:
        return proc.run(args, timeout=timeout, env=proc.child_env(), cap=1024 * 1024)
    except (OSError, proc.ProcTimeout):
        return None


def image_facts(image: str, *, timeout: float = 60.0, cache: Path | None = None) -> ImageFacts | None:
    """Python and Ray inside a local image, or None where Docker cannot tell.

    The first question is ``docker image inspect``, not whether an engine answers: it fails the same way
    without one, and asked beside the run's Docker probe (``doctor.local.docker_cli.DockerEngine``)
    instead of after it, the head's facts do not wait for ``docker info``.
    A name that is not an image reference (see ``image_problem``) never reaches Docker: None.
    """
    if image_problem(image) is not None:
        return None
    docker = shutil.which("docker")
    if not docker:
        return None
    inspected = ask([docker, "image", "inspect", "--format", "{{.Id}}", image], timeout=10)
    if not inspected or inspected.returncode != 0:
        return None
    image_id = inspected.stdout.strip()
    if not re.fullmatch(r"sha256:[0-9a-f]{64}|[0-9a-f]{12,64}", image_id):
        return None
    cache_file = (cache or cache_dir()) / "docker-images.json"
    from doctor import files

    try:
        known = json.loads(files.read_bytes(cache_file, CACHE_MAX_BYTES, follow_symlinks=False))
    except (files.Unreadable, ValueError, RecursionError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(image_id), dict):
        try:
            return _facts(image_id, known[image_id])
        except (KeyError, ValueError, TypeError, AttributeError):
            pass  # a damaged cache entry, or one written before packages were kept: ask the image again
    # Every option first, then the image, then the command it runs (`docker run [OPTIONS] IMAGE [COMMAND]`).
    ran = _run([docker, "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", PROBE], timeout)
    if not ran or ran.returncode != 0:
        return None
    try:
        facts = _facts(image_id, json.loads(ran.stdout.strip().splitlines()[-1]))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
        return None
    known = known if isinstance(known, dict) else {}
    known[image_id] = {"python": facts.python, "ray": facts.ray, "packages": dict(facts.packages), "image": image}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(cache_file, json.dumps(known, indent=1))
    except OSError:
        pass
    return facts


def _facts(image_id: str, data: Mapping[str, object]) -> ImageFacts:
    """ImageFacts from the probe's answer (or a cache entry); raises on a malformed one.

    The image's text is not trusted: a package whose name or version is not one (control
    characters, a name Docker's image could hold that no index would) is left out, not shown.
    """
    raw = data["packages"]
    if not isinstance(raw, dict):
        raise ValueError("packages is not an object")
    packages: dict[str, str] = {}
    for name, version in list(raw.items())[:MAX_PACKAGES]:
        if isinstance(name, str) and _DIST_NAME.fullmatch(name):
            try:
                packages.setdefault(canonicalize_name(name), _version(version))
            except ValueError:
                continue
    ray = data.get("ray")
    return ImageFacts(image_id, _version(data["python"]), _version(ray) if ray else None, packages)


def _version(value: object) -> str:
    """A version an image reported (``3.12.9``, ``2.49.2``); ValueError for anything else."""
    text = str(value).strip()
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]+(?:\.[0-9]+){0,3}[A-Za-z0-9.+-]{0,20}", text):
        raise ValueError(f"not a version: {text[:40]!r}")
    return text
