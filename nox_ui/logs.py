"""Loguru for everything: the app's own logs plus uvicorn's and the standard library's, routed in."""

from __future__ import annotations

import inspect
import logging
import re
import sys
from pathlib import Path
from types import FrameType

from loguru import logger

# Query parameters that carry one-time secrets (setup token, sign-in ticket) never reach a log line.
_SECRET_QUERY = re.compile(r"\b(token|ticket|password)=[^&\s\"]+", re.IGNORECASE)


def redact(message: str) -> str:
    return _SECRET_QUERY.sub(r"\1=[redacted]", message)


class InterceptHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: FrameType | None = inspect.currentframe()
        depth = 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, redact(record.getMessage()))


def configure_logging(level: str = "INFO", *, json: bool = False, log_dir: Path | None = None) -> None:
    logger.remove()
    logger.add(sys.stderr, level=level, serialize=json, backtrace=False, diagnose=False)
    if log_dir is not None:
        logger.add(
            log_dir / "nox-ui.log",
            level=level,
            serialize=json,
            rotation="10 MB",
            retention=5,
            compression="gz",
            backtrace=False,
            diagnose=False,  # diagnose would print local variables, passwords among them
            enqueue=True,
        )
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "nicegui", "alembic", "sqlalchemy"):
        std = logging.getLogger(name)
        std.handlers = [InterceptHandler()]
        std.propagate = False
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING if level != "DEBUG" else logging.INFO)
