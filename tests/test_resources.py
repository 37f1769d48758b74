"""The shipped compose files: found from any install, after the current folder and the source checkout."""

from __future__ import annotations

from pathlib import Path

from doctor import resources
from doctor.context import DEFAULT_COMPOSE, default_compose

REPO = Path(__file__).resolve().parent.parent


def install_into(prefix: Path) -> Path:
    """Lay out what a wheel's data files put under a prefix (setup.cfg's [options.data_files])."""
    path = prefix / "share" / "raydoctor" / DEFAULT_COMPOSE
    path.parent.mkdir(parents=True)
    path.write_text((REPO / DEFAULT_COMPOSE).read_text())
    return path


def test_an_installed_copy_is_found_from_an_empty_folder(tmp_path, monkeypatch):
    prefix, cwd, not_a_checkout = tmp_path / "prefix", tmp_path / "empty", tmp_path / "site-packages"
    cwd.mkdir()
    not_a_checkout.mkdir()
    shipped = install_into(prefix)
    monkeypatch.setattr("doctor.facts.target.REPO_ROOT", not_a_checkout)
    monkeypatch.setattr(resources, "data_prefixes", lambda: [tmp_path / "nothing-here", prefix])
    assert default_compose(cwd) == shipped


def test_the_current_folder_comes_first_then_the_checkout(tmp_path, monkeypatch):
    prefix, cwd = tmp_path / "prefix", tmp_path / "project"
    install_into(prefix)
    monkeypatch.setattr(resources, "data_prefixes", lambda: [prefix])
    local = cwd / DEFAULT_COMPOSE
    local.parent.mkdir(parents=True)
    local.write_text("services: {}\n")
    assert default_compose(cwd) == local
    assert default_compose(tmp_path) == REPO / DEFAULT_COMPOSE  # this source checkout


def test_nothing_anywhere(tmp_path, monkeypatch):
    monkeypatch.setattr("doctor.facts.target.REPO_ROOT", tmp_path)
    monkeypatch.setattr(resources, "data_prefixes", lambda: [tmp_path])
    assert default_compose(tmp_path) is None


def test_data_prefixes_start_with_this_interpreters_prefix():
    import sys

    prefixes = resources.data_prefixes()
    assert prefixes[0] == Path(sys.prefix) and len(prefixes) == len(set(prefixes))


def test_setup_cfg_ships_the_tutorials_compose_files_and_the_license():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    shipped = cfg["options.data_files"]["share/raydoctor/compose"].split()
    assert sorted(shipped) == ["compose/cpu-ray-cluster.yaml", "compose/gpu-ray-cluster.yaml"]
    assert all((REPO / name).is_file() for name in shipped)
    assert cfg["metadata"]["license"] == "Apache-2.0" and cfg["metadata"]["license_files"].strip() == "LICENSE"
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
