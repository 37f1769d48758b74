"""Ask Docker Engine what an image really holds, where an engine answers.

Only images already present locally are inspected: raydoctor never pulls
(that would send traffic the user did not ask for, and cost gigabytes).
Answers are cached per image id, so a second check costs one ``inspect``.
Without a Docker engine (as on CI machines) every function returns None
quietly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROBE = (
    "import json, platform, sys\n"
    "try:\n"
    "    from importlib.metadata import version\n"
    "    ray = version('ray')\n"
    "except Exception:\n"
    "    ray = None\n"
    "print(json.dumps({'python': platform.python_version(), 'ray': ray}))\n"
)


@dataclass(frozen=True)
class ImageFacts:
    image_id: str
    python: str
    ray: str | None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "raydoctor"


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def engine_available(timeout: float = 3.0) -> bool:
    """True when a Docker CLI exists and its engine answers."""
    docker = shutil.which("docker")
    if not docker:
        return False
    proc = _run([docker, "version", "--format", "{{.Server.Version}}"], timeout)
    return bool(proc and proc.returncode == 0 and proc.stdout.strip())


def image_facts(image: str, *, timeout: float = 60.0, cache: Path | None = None) -> ImageFacts | None:
    """Python and Ray inside a local image, or None where Docker cannot tell."""
    docker = shutil.which("docker")
    if not docker or not engine_available():
        return None
    inspected = _run([docker, "image", "inspect", "--format", "{{.Id}}", image], 10)
    if not inspected or inspected.returncode != 0:
        return None
    image_id = inspected.stdout.strip()
    cache_file = (cache or cache_dir()) / "docker-images.json"
    try:
        known = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(image_id), dict):
        entry = known[image_id]
        return ImageFacts(image_id, str(entry["python"]), entry.get("ray"))
    proc = _run([docker, "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", PROBE], timeout)
    if not proc or proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        facts = ImageFacts(image_id, str(data["python"]), data.get("ray"))
    except (ValueError, KeyError, IndexError):
        return None
    known = known if isinstance(known, dict) else {}
    known[image_id] = {"python": facts.python, "ray": facts.ray, "image": image}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(known, indent=1))
    except OSError:
        pass
    return facts
