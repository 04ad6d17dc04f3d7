"""Making a rename survive a crash: after `os.replace`, the directory that holds the name is synced
too, or a power cut may bring back the old name (the audit head, archives, the secret key, the
search index's `current` link all rely on it)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Make the renames and creations done in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
