"""What of the NVIDIA Container Toolkit this host has where Docker's daemon looks for it: the hooks on a
PATH, and the CDI specs for NVIDIA GPUs in the folders the engine reads.

moby registers the ``nvidia`` device driver (what compose's ``driver: nvidia`` reservation and
``docker run --gpus`` ask for) once, when dockerd starts, only where ``exec.LookPath`` finds a hook on
*dockerd's* PATH: ``nvidia-container-runtime-hook`` (``daemon/nvidia_linux.go``, v25.0.0 to v28.2;
``daemon/devices_nvidia_linux.go``, v28.3 to v29.1), or since docker-v29.2.0 also ``nvidia-cdi-hook``
(``daemon/devices_nvidia_linux.go::getNVIDIADeviceDrivers``, which then turns the request into CDI devices
``nvidia.com/gpu=<id>``). Read at moby b985e231 (2026-08) and its tags v25.0.0, v28.0.0, v28.5.2,
docker-v29.2.0. The NVIDIA Container Toolkit (v1.20.0, ``packaging/debian/*.install``) puts
``nvidia-container-runtime-hook`` in /usr/bin (package nvidia-container-toolkit; postinst links
``nvidia-container-toolkit`` to it) and ``nvidia-ctk``, ``nvidia-cdi-hook`` (since v1.16),
``nvidia-container-runtime`` in /usr/bin (package nvidia-container-toolkit-base).

dockerd's PATH is not this process's to read: a hook is looked for on this process's PATH and in the
folders a systemd service gets by default (``SYSTEM_PATH``, systemd.exec(5) "$PATH"), where a packaged
dockerd runs. A hook found here is one dockerd finds in all but odd setups; one not found here may still be
on a PATH of dockerd's own.

A CDI spec is a ``.json`` or ``.yaml`` file directly in a spec folder (subfolders are skipped: the cdi
package's ``pkg/cdi/spec-dirs.go::scanSpecDirs``, vendored in moby at container-device-interface v1.0.1);
NVIDIA's has ``kind: nvidia.com/gpu`` (toolkit ``pkg/nvcdi/spec/builder.go``: vendor nvidia.com, class gpu),
written by ``nvidia-ctk cdi generate`` (to /etc/cdi/nvidia.yaml as NVIDIA's guide has it) or, since toolkit
v1.18, by the nvidia-cdi-refresh service to /var/run/cdi/nvidia.yaml.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from doctor.files import Unreadable, read_bytes
from doctor.parsers.yaml_load import BoundedLoader

RUNTIME_HOOK = "nvidia-container-runtime-hook"
CDI_HOOK = "nvidia-cdi-hook"
CDI_KIND = "nvidia.com/gpu"
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

_SPEC_BYTES = 4 * 1024 * 1024  # a spec lists each GPU's device nodes and libraries: tens of KiB
_SPECS_PER_DIR = 64
_DIRS = 16


@dataclass(frozen=True)
class Toolkit:
    """The hooks found (their paths, or None) and the NVIDIA CDI spec files in the engine's spec folders."""

    runtime_hook: str | None
    cdi_hook: str | None
    searched: tuple[str, ...]  # the folders looked in for the hooks, in order
    cdi_specs: tuple[str, ...] = ()


def search_path(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """This process's PATH, then the standard system folders it lacks: where dockerd's hooks are looked for."""
    env = os.environ if environ is None else environ
    folders = [d for d in env.get("PATH", os.defpath).split(os.pathsep) if d]
    return tuple(dict.fromkeys([*folders, *SYSTEM_PATH]))


def find_hook(name: str, folders: Iterable[str]) -> str | None:
    """The first executable ``name`` in ``folders``, as ``exec.LookPath`` finds it on a PATH."""
    return shutil.which(name, path=os.pathsep.join(folders))


def spec_kind(path: Path) -> str | None:
    """A CDI spec file's ``kind`` ("nvidia.com/gpu"), or None where it cannot be read or is no spec."""
    try:
        raw = read_bytes(path, _SPEC_BYTES)
    except Unreadable:
        return None
    try:
        text = raw.decode("utf-8-sig")
        doc = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=BoundedLoader)  # noqa: S506
    except (ValueError, RecursionError, yaml.YAMLError):
        return None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    return kind if isinstance(kind, str) else None


def nvidia_cdi_specs(folders: Iterable[str]) -> tuple[str, ...]:
    """The spec files for NVIDIA GPUs (``kind: nvidia.com/gpu``) directly in ``folders``, as the engine reads them."""
    found: list[str] = []
    for folder in list(folders)[:_DIRS]:
        try:
            names = sorted(e.name for e in os.scandir(folder) if e.name.endswith((".json", ".yaml")))
        except OSError:
            continue
        for name in names[:_SPECS_PER_DIR]:
            path = Path(folder) / name
            if path.is_file() and spec_kind(path) == CDI_KIND:
                found.append(str(path))
    return tuple(found)


def look(environ: Mapping[str, str] | None = None, cdi_spec_dirs: Iterable[str] = ()) -> Toolkit:
    """The toolkit's parts this host has, for an engine that runs here and reads ``cdi_spec_dirs``."""
    folders = search_path(environ)
    return Toolkit(
        runtime_hook=find_hook(RUNTIME_HOOK, folders),
        cdi_hook=find_hook(CDI_HOOK, folders),
        searched=folders,
        cdi_specs=nvidia_cdi_specs(cdi_spec_dirs),
    )
