"""`nox-ui secrets rotate`: move every secret at rest to a new key.

With the key in `DATA_DIR/secret.key`: a new key is written to `secret.key.next` first, every
stored secret (settings, notifiers) is re-encrypted under it in one transaction with its audit
event, the audit head is re-signed, and only then is `secret.key.next` renamed over `secret.key`.
A crash at any point leaves both keys on disk, and the panel reads values under either of them.

With the key in `NOX_SECRET_KEY`, the operator sets the new key there and names a file holding the
old one; the values are re-encrypted from the old key to the new one and nothing is written to disk.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from nox_ui.config import NEXT_SECRET_KEY_FILE, SECRET_KEY_FILE
from nox_ui.crypto import SecretBox
from nox_ui.durable import fsync_directory
from nox_ui.errors import Invalid
from nox_ui.roles import CLI

if TYPE_CHECKING:
    from nox_ui.app import Services


@dataclass(frozen=True)
class Rotation:
    settings: int
    notifiers: int
    key_file: Path | None  # None when the key lives in NOX_SECRET_KEY


def rotate_secret_key(services: Services, *, old_key_file: Path | None = None) -> Rotation:
    settings = services.config
    if settings.secret_key:
        if old_key_file is None:
            raise Invalid(
                "the key comes from NOX_SECRET_KEY: set the new key there and pass the old one "
                "with --old-key-file FILE"
            )
        old_key = _read_key(old_key_file)
        new_key = settings.secret_key
        if old_key == new_key:
            raise Invalid("the old key is the same as NOX_SECRET_KEY; set a new key there first")
        box = SecretBox(new_key, [old_key, *services.secrets.previous_keys])
        # The running services hold only the new key: the head, signed under the old one, moves first.
        services.audit.resign_head(new_key, previous_keys=[old_key])
        settings_count, notifier_count = _reencrypt(services, box)
        return Rotation(settings_count, notifier_count, None)
    if old_key_file is not None:
        raise Invalid("--old-key-file is for a key kept in NOX_SECRET_KEY; this panel's key is a file")

    key_path = settings.data_dir / SECRET_KEY_FILE
    next_path = settings.data_dir / NEXT_SECRET_KEY_FILE
    old_key = services.secrets.secret_key
    # A rotation that stopped half-way left its key behind: finish that one rather than start another.
    new_key = settings.next_secret_key() or _write_private(next_path, secrets.token_urlsafe(48))
    box = SecretBox(new_key, [old_key, *services.secrets.previous_keys])
    settings_count, notifier_count = _reencrypt(services, box)
    services.audit.resign_head(new_key)
    os.replace(next_path, key_path)
    fsync_directory(settings.data_dir)
    logger.info(
        "secret key rotated; {} settings and {} notifiers re-encrypted", settings_count, notifier_count
    )
    return Rotation(settings_count, notifier_count, key_path)


def _reencrypt(services: Services, box: SecretBox) -> tuple[int, int]:
    with services.db.session() as session:
        settings_count = services.settings.reencrypt_secrets(session, box)
        notifier_count = services.notifiers.reencrypt_secrets(session, box)
        services.audit.record(
            session,
            actor=CLI,
            action="secrets.rotate",
            outcome="success",
            target_type="secret_key",
            details={"settings": settings_count, "notifiers": notifier_count},
        )
        session.commit()
    return settings_count, notifier_count


def _read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise Invalid(f"cannot read the old key from {path}: {exc.strerror}") from None
    if not key:
        raise Invalid(f"{path} is empty; it must hold the previous secret key")
    return key


def _write_private(path: Path, key: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    fsync_directory(path.parent)
    return key
