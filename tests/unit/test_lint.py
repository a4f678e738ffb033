"""The code stays clean under the project's lint rules (including no naive datetimes) and bandit's security checks."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--no-cache", str(ROOT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _bandit_targets() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["bandit"]
    return config["targets"]


def test_bandit_scans_every_product_package():
    """A package added to the product is added to bandit's targets too."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]["find"]["include"]
    roots = {name.rstrip("*").rstrip(".") for name in packages}
    targets = set(_bandit_targets())
    assert roots <= targets, f"not scanned by bandit: {sorted(roots - targets)}"
    assert all((ROOT / target).is_dir() for target in targets), targets


def test_bandit_finds_nothing():
    bandit = Path(sys.executable).with_name("bandit")
    if not bandit.exists():
        pytest.fail("bandit is not installed: scripts/install.sh --test installs it")
    result = subprocess.run(
        [str(bandit), "-c", "pyproject.toml", "-r", "-q", "-f", "json", *_bandit_targets()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    findings = [
        f"{r['filename']}:{r['line_number']}: {r['test_id']} ({r['issue_severity']}) {r['issue_text']}"
        for r in report["results"]
    ]
    assert not report["errors"], report["errors"]
    assert not findings, "bandit findings (fix, or end the line with `# why  # nosec Bxxx`):\n" + "\n".join(findings)
    assert result.returncode == 0, result.stderr
    assert report["metrics"]["_totals"]["loc"] > 1000, "bandit scanned almost nothing"
