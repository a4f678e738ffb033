"""Settings from CASECONF_* environment variables, checked before anything starts."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from caseconf.validation import is_email_address

ENV_PREFIX = "CASECONF_"

# What each setting expects, in words a person setting it up can act on.
EXPECTED = {
    "database_url": "a SQLAlchemy URL: sqlite:///path/to/file.db or postgresql+psycopg://user:pass@host:5432/dbname",
    "smtp_url": (
        "smtp://user:pass@host:587 (STARTTLS when offered) or smtps://user:pass@host:465;"
        " leave unset for the built-in mail catcher"
    ),
    "imap_url": (
        "imaps://user:pass@host:993/INBOX (or imap:// on loopback only), the app mailbox to poll for replies;"
        " leave unset when replies arrive by SMTP"
    ),
    "base_url": "the address people use to reach caseconf, e.g. https://caseconf.example.gov.uk",
    "secret_key": (  # a hint shown to people, not a secret  # nosec B105
        "a random string of at least 32 characters"
        " (e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
    ),
    "mail_from": "an email address such as clinic@example.org",
    "data_dir": "a directory caseconf can write to",
    "sign_in_token_minutes": "a whole number of minutes between 1 and 1440",  # a hint, not a secret  # nosec B105
    "sign_in_requests_per_hour": "a whole number between 1 and 1000",
    "catcher_port": "a TCP port number between 1 and 65535",
    "prefect_port": "a TCP port number between 1 and 65535",
    "inbox_port": "a TCP port number between 1 and 65535",
    "outbox_max_attempts": "a whole number between 1 and 100",
    "upload_max_file_mb": "a whole number of megabytes between 1 and 200",
    "upload_max_referral_mb": "a whole number of megabytes between 1 and 1000",
    "triage_working_days": "a whole number of working days between 1 and 30",
    "retention_referral_years": "a whole number of years between 1 and 100",
    "retention_until_age": "a child's age in whole years between 0 (not used) and 100",
    "retention_draft_days": "a whole number of days between 1 and 3650",
    "retention_email_days": "a whole number of days between 1 and 3650",
    "retention_session_days": "a whole number of days between 1 and 3650",
    "retention_report_only": "true or false",
}


class SettingsError(Exception):
    """Raised with one line per bad setting; the CLI prints it without a traceback."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Path("var")
    database_url: str = ""
    smtp_url: str | None = None
    imap_url: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    mail_from: str = "clinic@kestrelford.example.org"
    mail_from_name: str = "Kestrelford Inclusion Team"
    organisation_name: str = "Kestrelford Borough Council"
    catcher_host: str = "127.0.0.1"
    catcher_port: int = Field(8025, ge=1, le=65535)
    prefect_port: int = Field(4200, ge=1, le=65535)
    # The app mailbox's own SMTP listener (replies, status requests); production forwards mail to it.
    inbox_host: str = "127.0.0.1"
    inbox_port: int = Field(2526, ge=1, le=65535)
    sign_in_token_minutes: int = Field(15, ge=1, le=1440)
    sign_in_requests_per_hour: int = Field(5, ge=1, le=1000)
    outbox_max_attempts: int = Field(8, ge=1, le=100)
    outbox_backoff_seconds: int = Field(30, ge=1, le=3600)
    upload_max_file_mb: int = Field(10, ge=1, le=200)
    upload_max_referral_mb: int = Field(30, ge=1, le=1000)
    triage_working_days: int = Field(3, ge=1, le=30)
    # Addresses of the reverse proxies whose X-Forwarded-For may be believed (comma-separated).
    trusted_proxies: str = ""
    # The retention schedule (docs/data-protection.md). Closed, withdrawn, declined and signposted referrals lose
    # what identifies the child this many years after they ended; with until_age set, not before the child
    # reaches that age as well (25 follows the schools' safeguarding guidance).
    retention_referral_years: int = Field(6, ge=1, le=100)
    retention_until_age: int = Field(0, ge=0, le=100)
    retention_draft_days: int = Field(90, ge=1, le=3650)  # drafts never submitted, from their last change
    retention_email_days: int = Field(180, ge=1, le=3650)  # bodies of sent and received emails
    retention_session_days: int = Field(30, ge=1, le=3650)  # sign-in links and sessions, after they expire
    retention_report_only: bool = False  # the nightly run reports what is due and changes nothing

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:///", "postgresql+psycopg://", "postgresql://")):
            raise ValueError("unsupported database URL")
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("not an smtp:// or smtps:// URL with a host")
        _ = parts.port  # raises ValueError on a bad port
        return value

    @field_validator("imap_url")
    @classmethod
    def _imap_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise ValueError("not an imap:// or imaps:// URL with a host")
        _ = parts.port
        if parts.scheme == "imap" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("plain imap:// is only for a mailbox on this machine: use imaps://")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL")
        return value.rstrip("/")

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        if not is_email_address(value):
            raise ValueError("not an email address")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("too short")
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'caseconf.db').resolve()}"
        if self.base_url.startswith("https://") and not self.secret_key:
            raise ValueError("secret_key: must be set when caseconf is served over https")
        if self.base_url.startswith("https://") and not self.smtp_url:
            # The catcher shows every email, sign-in links included: never on a served site.
            raise ValueError("smtp_url: must be set when caseconf is served over https")
        return self

    @property
    def uses_mail_catcher(self) -> bool:
        return self.smtp_url is None

    @property
    def effective_smtp_url(self) -> str:
        return self.smtp_url or f"smtp://{self.catcher_host}:{self.catcher_port}"

    @property
    def secure_cookies(self) -> bool:
        """Secure cookies unless the site is plain http on this machine (the embedded run); over plain http
        to any other host the browser then keeps no session, so such a site cannot be used without TLS."""
        parts = urlsplit(self.base_url)
        return not (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))

    @property
    def rehearsal_clock_file(self) -> Path:
        return self.data_dir / "rehearsal-now"

    @property
    def maildir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def documents_dir(self) -> Path:
        """Uploads and generated packs, outside anything the web server serves."""
        return self.data_dir / "documents"

    @property
    def prefect_home(self) -> Path:
        return self.data_dir / "prefect"

    def secret(self) -> str:
        """The signing key: configured, or generated once and kept under the data dir (embedded use)."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Created readable by the owner only, never briefly readable by others.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(48))
        return path.read_text().strip()

    def masked(self) -> dict[str, str]:
        """The effective configuration with secrets hidden, for `caseconf check`."""
        shown = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "secret_key":
                value = "(set)" if value else f"(generated, kept in {self.data_dir / 'secret_key'})"
            elif name in ("database_url", "smtp_url", "imap_url") and value:
                value = _mask_password(str(value))
            if value is None:
                value = "(unset: replies arrive by SMTP)" if name == "imap_url" else "(unset: built-in mail catcher)"
            shown[ENV_PREFIX + name.upper()] = str(value)
        return shown


def _mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":****@", 1)
    return url


def load_settings(**overrides) -> Settings:
    """Read settings from the environment; raise SettingsError naming each bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            if not name and str(error.get("msg", "")).startswith("Value error, "):
                name, _, _ = str(error["msg"]).removeprefix("Value error, ").partition(":")
            env_name = ENV_PREFIX + name.upper() if name else "configuration"
            given = os.environ.get(env_name)
            shown = f" (got {given!r})" if given is not None and name != "secret_key" else ""
            expected = EXPECTED.get(name, error.get("msg", "a valid value"))
            problems.append(f"{env_name} is not valid{shown}: expected {expected}.")
        raise SettingsError(problems) from None


def configure_prefect(settings: Settings, *, api_url: str | None = None) -> None:
    """Point Prefect at a home under our data dir, with telemetry off; call before importing prefect."""
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(settings.prefect_home.resolve())
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if api_url:
        os.environ["PREFECT_API_URL"] = api_url
