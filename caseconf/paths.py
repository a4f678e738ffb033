"""Where the project's own files are."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
FRONTEND_DIR = PROJECT_ROOT / "node_modules" / "govuk-frontend" / "dist" / "govuk"


def frontend_installed() -> bool:
    return (FRONTEND_DIR / "govuk-frontend.min.css").exists()
