"""The bridge from the core's `Signal`s to NiceGUI: one `Event` per signal, per process.

Pages subscribe to the bridged `Event` (NiceGUI ties each subscription to the browser tab and drops it
when the tab goes); the core signal has exactly one listener for it, however many tabs are open.
"""

from __future__ import annotations

from typing import Any, TypeVar

from nicegui import Event

from nox_ui.signals import Signal

T = TypeVar("T")

_bridged: dict[int, tuple[Signal[Any], Event[Any]]] = {}


def ui_event(signal: Signal[T]) -> Event[T]:
    """The NiceGUI `Event` that re-emits `signal`; made on first use and kept while the signal lives."""
    entry = _bridged.get(id(signal))
    if entry is not None and entry[0] is signal:
        return entry[1]
    event: Event[T] = Event()
    signal.connect(event.emit)
    _bridged[id(signal)] = (signal, event)
    return event
