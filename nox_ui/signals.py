"""The core's one way to tell others that something happened, without importing the UI.

A `Signal` holds listeners and calls each with what `emit` is given, in the emitter's thread, in the
order they connected. A listener that raises is logged and the others still run: the change that was
announced has already happened (stored, audited) and one broken listener must not hide it from the rest.

The UI layer bridges the signals it shows to NiceGUI's `Event` (which ties a listener to a browser tab
and drops it when the tab goes); services, the CLI and the tests never import NiceGUI for this.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from loguru import logger

T = TypeVar("T")


class Signal(Generic[T]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Callable[[T], object]] = []

    def connect(self, listener: Callable[[T], object]) -> Callable[[], None]:
        """Call `listener` on every emit from now on; returns the function that disconnects it."""
        self._listeners.append(listener)

        def disconnect() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return disconnect

    def emit(self, value: T) -> None:
        for listener in list(self._listeners):
            try:
                listener(value)
            except Exception:
                logger.exception("a listener of {} failed; the others still ran", self.name)

    def emit_on(self, loop: asyncio.AbstractEventLoop | None, value: T) -> None:
        """`emit` in the thread of `loop` while it runs (listeners that touch the UI must run there):
        at once when called on it, scheduled when called from another thread; at once when no loop runs."""
        if loop is not None and loop.is_running() and not loop.is_closed():
            try:
                on_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                on_loop = False
            if not on_loop:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody to tell
                    loop.call_soon_threadsafe(self.emit, value)
                return
        self.emit(value)

    def __len__(self) -> int:
        return len(self._listeners)
