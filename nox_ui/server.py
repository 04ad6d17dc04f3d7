"""`nox-ui serve`: prepare the data dir, migrate, build the services, mount the web app, run uvicorn.

`prepare_core` is the CLI's: the same storage preparation, then only the core (`nox_ui/app.py`)."""

from __future__ import annotations

import sys
import time

from loguru import logger

from nox_ui import __version__, migrate
from nox_ui.app import Core, Services, build_core, build_services
from nox_ui.config import Settings
from nox_ui.logs import configure_logging

STARTED_AT = time.monotonic()
RECONNECT_TIMEOUT = 10.0
TAB_STORAGE_AGE = 60.0  # seconds; NiceGUI prunes older tab storage every 10 s


def message_history_length(sample_interval: float) -> int:
    """Messages each page keeps for replay after a reconnect. A live page gets about two per sample
    (element updates and a chart append); NiceGUI's default of 1,000 would hold ~8 minutes of them,
    ~1.5 MiB per open page, when only the reconnect window (10 s) is ever replayed."""
    return int(RECONNECT_TIMEOUT / sample_interval * 3) + 30


def _prepare_storage(settings: Settings) -> None:
    settings.prepare_data_dir()
    if not settings.database_url:
        settings.create_private_file(settings.data_dir / "nox.db")
    migrate.upgrade_if_needed(settings.resolved_database_url)


def prepare(settings: Settings) -> Services:
    """Everything `serve` does before listening; also used by tests that run the real app."""
    _prepare_storage(settings)
    return build_services(settings)


def prepare_core(settings: Settings) -> Core:
    """The data dir, the database at the newest revision, and the core services: what a CLI command needs."""
    _prepare_storage(settings)
    return build_core(settings)


def announce_setup(services: Services) -> None:
    token = services.setup.token()
    if token is None:
        return
    url = f"{services.config.resolved_base_url}/setup?token={token}"
    banner = "=" * 72
    # print, not log: the one-time URL is for the person at the console, not for log files
    print(
        f"\n{banner}\nNo user exists yet. Create the first administrator here (works once):\n\n  {url}\n\n"
        f"Or offline: nox-ui users create NAME --role admin\n{banner}\n",
        flush=True,
    )


# The Socket.IO *client* half that NiceGUI's server pulls in (engineio.client, engineio.async_client)
# tries these HTTP client libraries and works without them; the panel only serves Socket.IO, so they
# would sit idle in memory (~14 MiB resident with both). Outside that one import they stay importable
# as usual (apprise uses requests when a notification goes out). aiohttp is only installed with the
# `bench` extra anyway, so this also makes a dev install measure like a production one.
SOCKETIO_CLIENT_LIBRARIES = ("requests", "aiohttp")


def import_socketio_server_only() -> None:
    """Import engineio (and so Socket.IO) with its client libraries hidden; a no-op once imported."""
    if "engineio" in sys.modules:
        return
    hidden = [name for name in SOCKETIO_CLIENT_LIBRARIES if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` raises ImportError
    try:
        import engineio
    except ImportError:  # a version that needs them after all: import as usual
        for name in hidden:
            del sys.modules[name]
        hidden = []
        import engineio  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]


def serve(settings: Settings) -> None:
    import_socketio_server_only()

    from nicegui import app, ui
    from nicegui.storage import Storage

    from nox_ui.web import mount_app

    settings.prepare_data_dir()
    configure_logging(settings.log_level, json=settings.log_json, log_dir=settings.data_dir / "logs")
    logger.info("Nox UI {} starting; data in {}", __version__, settings.data_dir.resolve())
    services = prepare(settings)
    Storage.path = (settings.data_dir / "ui-storage").resolve()
    app.storage = Storage()
    # Nox keeps nothing in app.storage.tab, yet NiceGUI holds an empty one in memory per browser tab ever
    # opened, for 30 days by default: unbounded growth under reconnecting clients (bench/soak.py).
    app.storage.max_tab_storage_age = TAB_STORAGE_AGE
    mount_app(services)  # starts the runtime with the app and stops it before the shutdown below

    @app.on_startup
    def _ready() -> None:
        logger.info(
            "listening on http://{}:{} (ready in {:.2f} s)",
            settings.host,
            settings.port,
            time.monotonic() - STARTED_AT,
        )
        announce_setup(services)

    app.on_shutdown(services.close)
    ui.run(
        host=settings.host,
        port=settings.port,
        title="Nox UI",
        dark=None,
        reload=False,
        show=False,
        show_welcome_message=False,
        storage_secret=settings.load_secret_key(),
        favicon="🖥️",
        uvicorn_logging_level=settings.log_level.lower() if settings.log_level != "SUCCESS" else "info",
        log_config=None,
        # One line per HTTP request costs more than answering many API calls; sign-ins and changes
        # are logged by the services themselves. NOX_LOG_LEVEL=DEBUG turns the access log on.
        access_log=settings.log_level in {"TRACE", "DEBUG"},
        # uvicorn would believe X-Forwarded-For from loopback; only NOX_TRUSTED_PROXIES may set the
        # client address (nox_ui/http_guard.py), so uvicorn's own proxy handling is off.
        proxy_headers=False,
        reconnect_timeout=RECONNECT_TIMEOUT,
        message_history_length=message_history_length(settings.sample_interval),
    )
