"""The import direction web -> flows -> notifications -> meetings -> agencies -> caseconf is enforced."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("caseconf", "agencies", "meetings", "notifications", "flows", "web")
LINT = str(Path(sys.executable).with_name("lint-imports"))


def run_linter(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT, "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_project_keeps_the_layers():
    result = run_linter(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_way_import_is_caught(tmp_path):
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "node_modules")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "agencies" / "models.py", "a") as module:
        module.write("\nimport web.app  # agencies must not know about the web\n")
    result = run_linter(tmp_path)
    assert result.returncode != 0
    assert "agencies.models -> web.app" in result.stdout
