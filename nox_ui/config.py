"""Process settings: the NOX_* environment variables of SPEC.md, read once at start."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_SUBDIRS = ("logs", "cache", "index", "backups", "plugins", "ui-storage")
SECRET_KEY_FILE = "secret.key"
# Written by `nox-ui secrets rotate` before the database is re-encrypted, renamed over secret.key after:
# while it exists, values encrypted under either key stay readable.
NEXT_SECRET_KEY_FILE = "secret.key.next"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOX_", extra="ignore")

    data_dir: Path = Path("./data")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    database_url: str | None = None
    secret_key: str | None = None
    base_url: str | None = None
    sample_interval: float = Field(default=1.0, gt=0, le=3600)
    log_level: str = "INFO"
    log_json: bool = False
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    metrics_public: bool = False
    redis_url: str | None = None
    # Addresses or CIDRs (comma-separated) of reverse proxies whose X-Forwarded-For/-Proto are believed.
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in value.split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"not an IP address or CIDR: {item.strip()!r}") from None
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [item.strip() for item in self.trusted_proxies.split(",") if item.strip()]

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'nox.db').resolve()}"

    @property
    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def prepare_data_dir(self) -> None:
        """Create the data dir and its subfolders, owner-only (0700)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _restrict(self.data_dir, 0o700)
        for name in DATA_SUBDIRS:
            sub = self.data_dir / name
            sub.mkdir(mode=0o700, exist_ok=True)
            if name != "plugins":  # an unsafe plugins folder is refused and reported, not quietly fixed
                _restrict(sub, 0o700)

    @staticmethod
    def create_private_file(path: Path) -> None:
        """Create an empty 0600 file if missing (SQLite then gives its -wal/-shm files the same mode)."""
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    def load_secret_key(self) -> str:
        """NOX_SECRET_KEY if set, else the key generated once into DATA_DIR/secret.key (0600)."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / SECRET_KEY_FILE
        if path.exists():
            _restrict(path, 0o600)
            key = path.read_text(encoding="utf-8").strip()
            if key:
                return key
        key = secrets.token_urlsafe(48)
        # O_EXCL so two processes starting at once cannot both write a key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text(encoding="utf-8").strip()
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
        return key

    def next_secret_key(self) -> str | None:
        """The key a rotation was moving to when it stopped (DATA_DIR/secret.key.next), if any."""
        path = self.data_dir / NEXT_SECRET_KEY_FILE
        if not path.exists():
            return None
        return path.read_text(encoding="utf-8").strip() or None


def _restrict(path: Path, mode: int) -> None:
    # A mounted volume may belong to someone else; the owner's choice then stands.
    with contextlib.suppress(PermissionError):
        if path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
