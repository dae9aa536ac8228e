"""Settings from the environment (prefix ROUNDTABLE_) and an optional .env file."""

import stat
from enum import Enum
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


# Moments the engine accepts from people (--now, anchors, --due): far outside these a typo is likelier than
# intent, and years like 1 or 9999 overflow once a zone offset or a backoff is added.
MOMENT_YEARS = range(1990, 2101)
MIN_SECRET_BYTES = 32
SIMULATION_SECRET_FILE = "secret_key"  # `simulate --out DIR` writes the key it signed with here, beside the database


class SecretKeyError(ValueError):
    """The secret key file exists but cannot be read as a key (a directory, no permission, not UTF-8)."""


def known_zone(value: str) -> str:
    """The name of an IANA time zone, or a ValueError that says it is unknown."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Vientiane)") from exc
    return value


class SmtpTls(str, Enum):
    none = "none"
    starttls = "starttls"
    ssl = "ssl"


def default_secret_file() -> Path:
    """The secret key lives outside the repository, in the user's config dir."""
    return Path.home() / ".config" / "roundtable" / "secret_key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROUNDTABLE_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///roundtable.db"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: SmtpTls = SmtpTls.none
    sender: str = "Roundtable <roundtable@localhost>"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr | None = None
    secret_file: Path = default_secret_file()
    timezone: str = "Asia/Vientiane"
    outbox_dir: Path = Path("outbox")
    # Answers by mail: Reply-To replies+<token>@ this mailbox, and the ORGANIZER of invitations.
    reply_address: str | None = None
    imap_host: str | None = None
    imap_port: int = 0  # 0: 993 with ssl, else 143
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_tls: SmtpTls = SmtpTls.none
    imap_folder: str = "INBOX"
    imap_ca_file: Path | None = None  # certificates to trust besides the system's (a self-signed server)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("smtp_host", "imap_host", "reply_address")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    def resolved_secret_key(self) -> str | None:
        """The key from the environment, else from the secret file, else None."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.secret_file.expanduser()
        if path.is_dir():
            raise SecretKeyError(f"secret key file {path} is a directory (ROUNDTABLE_SECRET_FILE must name a file)")
        if not path.exists():
            return None
        try:
            return path.read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SecretKeyError(f"cannot read the secret key file {path}: {reason}") from exc


def secret_key_problems(settings: Settings) -> list[str]:
    """What is wrong with the secret key that signs the action links: one sentence each, empty when all is
    well (or no key exists yet). Every command warns with these; `serve` refuses to start on any."""
    problems = []
    path = settings.secret_file.expanduser()
    if settings.secret_key is not None:
        key, where = settings.secret_key.get_secret_value().strip(), "ROUNDTABLE_SECRET_KEY"
    else:
        where = f"secret key file {path}"
        try:
            key = settings.resolved_secret_key()
        except SecretKeyError as exc:
            return [str(exc)]
        if key is not None:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                problems.append(f"{where} can be read by group or others (mode {stat.S_IMODE(mode):o}): "
                                f"chmod 600 {path}")
    if key is not None and len(key.encode("utf-8")) < MIN_SECRET_BYTES:
        problems.append(f"{where} is shorter than {MIN_SECRET_BYTES} bytes: anyone could guess the signed links "
                        "(remove it and run `roundtable init` for a new one)")
    return problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def secret_for(database_url: str, configured: str | None) -> str | None:
    """The configured key; without one, the key a simulation wrote beside its SQLite database."""
    if configured:
        return configured
    if database_url.startswith("sqlite:///"):
        beside = Path(database_url.removeprefix("sqlite:///")).parent / SIMULATION_SECRET_FILE
        if beside.is_file():
            return beside.read_text(encoding="utf-8").strip() or None
    return None
