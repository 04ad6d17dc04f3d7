"""The `nox-ui` command line. Every failure prints one line `nox-ui: error: ...` and exits non-zero."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from nox_ui import __version__, migrate
from nox_ui.config import Settings
from nox_ui.errors import Invalid, NoxError
from nox_ui.parsing import parse_time
from nox_ui.roles import CLI, Role

if TYPE_CHECKING:
    from nox_ui.app import Core
    from nox_ui.plugins.catalog import CatalogEntry

# How soon a running panel applies a decision made here: PluginHost.WATCH_SECONDS (the host is the
# runtime's, so the CLI does not import it).
PLUGIN_WATCH_SECONDS = 5


class CliError(Exception):
    """A user-facing failure of a command: printed as one line, exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    for name in ("host", "port", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return Settings(**overrides)


def _services(args: argparse.Namespace) -> Core:
    """The core services (database, audit, users, sign-in, settings): all the commands below need.
    Nothing of the runtime (sampler, alerting, notifiers) is built or imported."""
    from nox_ui.server import prepare_core

    return prepare_core(_settings(args))


def _read_password(args: argparse.Namespace, *, confirm: bool) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            raise CliError("no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for a password; pass it with --password-stdin")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Repeat password: ") != password:
        raise CliError("the two passwords differ")
    return password


def cmd_serve(args: argparse.Namespace) -> int:
    from nox_ui.server import serve

    serve(_settings(args))
    return 0


def cmd_users_create(args: argparse.Namespace) -> int:
    role = Role.parse(args.role)
    services = _services(args)
    password = _read_password(args, confirm=True)
    user = services.users.create(CLI, args.username, password, role)
    print(f"created user {user.username!r} with role {user.role}")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    users = _services(args).users.list()
    if not users:
        print("no users yet")
        return 0
    print(f"{'USERNAME':<24} {'ROLE':<9} {'STATUS':<9} LAST SIGN-IN")
    for user in users:
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        print(f"{user.username:<24} {user.role:<9} {'disabled' if user.disabled else 'active':<9} {last}")
    return 0


def cmd_users_set_password(args: argparse.Namespace) -> int:
    services = _services(args)
    services.users.get_by_username(args.username)
    services.users.set_password(CLI, args.username, _read_password(args, confirm=True))
    print(f"password of {args.username!r} changed; their sessions and tokens were ended")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    _services(args).users.set_disabled(CLI, args.username, True)
    print(f"user {args.username!r} disabled; their sessions and tokens were ended")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    services = _services(args)
    result = services.audit.verify()
    if not result.ok:
        raise CliError(f"audit log broken: {result.reason}")
    print(f"audit log intact: {result.checked} events")
    checks = services.audit.verify_archives(args.archive or [])
    for check in checks:
        if check.ok:
            print(f"{check.path}: intact, events {check.first_id}-{check.last_id} ({check.checked})")
    broken = next((check for check in checks if not check.ok), None)
    if broken is not None:
        raise CliError(f"archive {broken.path} broken: {broken.reason}")
    return 0


def cmd_audit_reanchor(args: argparse.Namespace) -> int:
    head = _services(args).audit.reanchor(CLI, reason=args.reason)
    print(f"audit log re-anchored at event {head.last_id} ({head.count} events)")
    return 0


def _plugin_state(entry: CatalogEntry) -> str:
    """enabled, disabled, incompatible (its supported panel versions exclude this one) or refused."""
    if entry.refused:
        return "incompatible" if entry.incompatible else "refused"
    return "enabled" if entry.enabled else "disabled"


def cmd_plugins_list(args: argparse.Namespace) -> int:
    catalog = _services(args).plugin_catalog
    entries = catalog.entries(refresh=True)
    if not entries:
        print("no plugins found")
        return 0
    name_width = max(24, *(len(entry.name) + 1 for entry in entries))
    print(f"{'NAME':<{name_width}} {'VERSION':<12} {'STATE':<13} SOURCE")
    for entry in entries:
        state = _plugin_state(entry)
        print(f"{entry.name:<{name_width}} {entry.info.version:<12} {state:<13} {entry.info.source}")
    return 0


def cmd_plugins_enable(args: argparse.Namespace) -> int:
    _services(args).plugin_catalog.enable(CLI, args.name)
    print(f"plugin {args.name!r} enabled; a running panel loads it within {PLUGIN_WATCH_SECONDS} s")
    return 0


def cmd_plugins_disable(args: argparse.Namespace) -> int:
    _services(args).plugin_catalog.disable(CLI, args.name)
    print(f"plugin {args.name!r} disabled; a running panel unloads it within {PLUGIN_WATCH_SECONDS} s")
    return 0


def cmd_plugins_info(args: argparse.Namespace) -> int:
    catalog = _services(args).plugin_catalog
    entry = catalog.entry(args.name)
    info = entry.info
    fields = [
        ("name", info.name),
        ("version", info.version),
        ("description", info.description),
        ("author", info.author),
        ("homepage", info.homepage),
        ("panel", info.panel or "any version"),
        ("source", info.source),
        ("module", info.module),
        ("state", _plugin_state(entry)),
        ("reason", entry.refused),
    ]
    for label, value in fields:
        print(f"{label + ':':<13}{value or '-'}")
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    cache = _services(args).cache
    try:
        removed = cache.clear()  # safe beside a running panel: it computes again what it misses
    except OSError as exc:
        raise CliError(str(exc)) from None
    finally:
        cache.close()
    print(f"cache cleared: {removed} entries removed from {cache.directory}")
    return 0


def cmd_search_reindex(args: argparse.Namespace) -> int:
    """Rebuild DATA_DIR/index from the database. Safe beside a running panel: the new build is swapped
    in atomically and the panel's writer catches up on what changed meanwhile. `--from-panel` is the
    panel's own child process (the panel audited the request): it builds no core and touches nothing
    else of the data dir."""
    from nox_ui.search.build import rebuild_index
    from nox_ui.search.index import IndexLayout

    settings = _settings(args)
    if args.from_panel:
        from nox_ui.db import Database

        db = Database(settings.resolved_database_url)
        close = db.dispose
    else:
        core = _services(args)
        core.audit.record_now(
            actor=CLI, action="search.reindex", outcome="success", target_type="search", target_id="index"
        )
        db, close = core.db, core.close

    def progress(fraction: float, what: str) -> None:
        print(f"indexing: {fraction:4.0%} ({what})", flush=True)

    try:
        done = rebuild_index(db, IndexLayout(settings.data_dir / "index"), progress=progress)
    except OSError as exc:
        message = exc.strerror or str(exc)  # IndexFull says "search index: no space left on device"
        if not message.startswith("search index"):
            message = f"search index: {message}"
        raise CliError(message) from None
    finally:
        close()
    print(f"search index rebuilt: {done.documents} documents in {done.seconds:.1f} s ({done.build.path})")
    return 0


def _panel_listening(settings: Settings) -> bool:
    """Whether something answers on the panel's address: a running panel keeps the old key in memory."""
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host
    try:
        with socket.create_connection((host, settings.port), timeout=0.5):
            return True
    except OSError:
        return False


def cmd_secrets_rotate(args: argparse.Namespace) -> int:
    from nox_ui.services.secret_rotation import rotate_secret_key

    settings = _settings(args)
    if _panel_listening(settings) and not args.force:
        raise CliError(
            f"something listens on {settings.host}:{settings.port}: stop the panel first "
            "(it keeps the old key in memory), or pass --force if that is not this panel"
        )
    from nox_ui.server import prepare

    done = rotate_secret_key(prepare(settings), old_key_file=args.old_key_file)
    where = f"the new key is in {done.key_file}" if done.key_file else "the new key is NOX_SECRET_KEY's"
    print(
        f"secret key rotated: {done.settings} setting(s) and {done.notifiers} notifier(s) re-encrypted; "
        f"{where}. Start the panel again; signed-in browsers stay signed in."
    )
    return 0


def _cutoff(args: argparse.Namespace) -> datetime:
    if args.older_than_days is not None:
        if args.older_than_days < 0:
            raise CliError("--older-than-days must not be negative")
        return datetime.now(UTC) - timedelta(days=args.older_than_days)
    try:
        seconds = parse_time(args.before, "--before")
    except Invalid as exc:
        raise CliError(str(exc)) from None
    if seconds is None:
        raise CliError("--before: give a date such as 2026-01-31 or an ISO 8601 time")
    return datetime.fromtimestamp(seconds, UTC)


def cmd_audit_archive(args: argparse.Namespace) -> int:
    cutoff = _cutoff(args)
    services = _services(args)
    done = services.audit.archive(CLI, cutoff, services.config.data_dir / "backups")
    if done.count == 0:
        print(f"nothing to archive: no event before {cutoff.isoformat(timespec='seconds')}")
    else:
        print(f"archived {done.count} events to {done.path}")
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    for chunk in _services(args).audit.export(args.format):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    return 0


def _db_url(args: argparse.Namespace) -> str:
    settings = _settings(args)
    settings.prepare_data_dir()
    return settings.resolved_database_url


def _check_revision(url: str, revision: str) -> None:
    special = {"head", "heads", "base"}
    if revision in special or revision.startswith(("+", "-")):
        return
    if revision not in migrate.known_revisions(url):
        raise CliError(f"unknown revision {revision!r} (see 'nox-ui db history')")


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    url = _db_url(args)
    _check_revision(url, args.revision)
    migrate.upgrade(url, args.revision)
    print(f"database at revision {migrate.current_revision(url) or 'base'}")
    return 0


def cmd_db_downgrade(args: argparse.Namespace) -> int:
    url = _db_url(args)
    _check_revision(url, args.revision)
    migrate.downgrade(url, args.revision)
    print(f"database at revision {migrate.current_revision(url) or 'base'}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    url = _db_url(args)
    current = migrate.current_revision(url)
    head = migrate.head_revision(url)
    print(f"{current or 'base (empty database)'}{' (head)' if current == head else ''}")
    return 0


def cmd_db_history(args: argparse.Namespace) -> int:
    print(migrate.history(_db_url(args)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nox-ui", description="Nox UI: server administration and monitoring panel.")
    parser.add_argument("--version", action="version", version=f"nox-ui {__version__}")
    parser.add_argument("--data-dir", type=Path, help="where all state lives (NOX_DATA_DIR)")
    # --data-dir is accepted after the subcommand too; SUPPRESS keeps an absent one from erasing the global.
    common = _Parser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, default=argparse.SUPPRESS, help="where all state lives (NOX_DATA_DIR)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    def add(
        group: argparse._SubParsersAction[_Parser], name: str, func: Callable[..., int], help: str
    ) -> _Parser:
        sub: _Parser = group.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(func=func)
        return sub

    serve = add(commands, "serve", cmd_serve, "run the panel")
    serve.add_argument("--host", help="bind address (NOX_HOST)")
    serve.add_argument("--port", type=int, help="port (NOX_PORT)")

    users = commands.add_parser("users", help="manage accounts", description="manage accounts")
    user_cmds = users.add_subparsers(dest="users_command", metavar="ACTION", parser_class=_Parser)
    user_cmds.required = True
    create = add(user_cmds, "create", cmd_users_create, "create an account")
    create.add_argument("username")
    create.add_argument("--role", required=True, help="admin, operator or viewer")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add(user_cmds, "list", cmd_users_list, "list accounts")
    setpw = add(
        user_cmds, "set-password", cmd_users_set_password, "change a password (ends that user's sessions)"
    )
    setpw.add_argument("username")
    setpw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    disable = add(user_cmds, "disable", cmd_users_disable, "disable an account (ends its sessions)")
    disable.add_argument("username")

    audit = commands.add_parser("audit", help="the audit log", description="the audit log")
    audit_cmds = audit.add_subparsers(dest="audit_command", metavar="ACTION", parser_class=_Parser)
    audit_cmds.required = True
    verify = add(
        audit_cmds, "verify", cmd_audit_verify, "recompute the hash chain (exit 1 naming the first bad event)"
    )
    verify.add_argument(
        "--archive",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="also check these archive files, each vouched for by the log or another file given",
    )
    archive = add(
        audit_cmds,
        "archive",
        cmd_audit_archive,
        "move old events to a file in DATA_DIR/backups, chain intact",
    )
    cutoff = archive.add_mutually_exclusive_group(required=True)
    cutoff.add_argument("--before", metavar="DATE", help="events before YYYY-MM-DD (UTC) or an ISO 8601 time")
    cutoff.add_argument("--older-than-days", type=int, metavar="N", help="events older than N days")
    reanchor = add(
        audit_cmds,
        "reanchor",
        cmd_audit_reanchor,
        "anchor the log as it is now, replacing a missing, forged or stuck head (after checking why)",
    )
    reanchor.add_argument("--reason", default="", help="recorded in the audit.anchor event")
    export = add(audit_cmds, "export", cmd_audit_export, "write every event to standard output")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="csv (default) or jsonl")

    secrets_group = commands.add_parser(
        "secrets", help="secrets at rest", description="secrets at rest (SMTP password, notifier secrets)"
    )
    secrets_cmds = secrets_group.add_subparsers(
        dest="secrets_command", metavar="ACTION", parser_class=_Parser
    )
    secrets_cmds.required = True
    rotate = add(
        secrets_cmds, "rotate", cmd_secrets_rotate, "re-encrypt every stored secret under a new secret key"
    )
    rotate.add_argument(
        "--old-key-file",
        type=Path,
        metavar="FILE",
        help="with NOX_SECRET_KEY set to the new key: a file holding the previous key",
    )
    rotate.add_argument("--force", action="store_true", help="rotate even if the panel's port answers")

    plugins = commands.add_parser(
        "plugins", help="plugins: list, enable, disable", description="the plugins found and their state"
    )
    plugin_cmds = plugins.add_subparsers(dest="plugins_command", metavar="ACTION", parser_class=_Parser)
    plugin_cmds.required = True
    add(plugin_cmds, "list", cmd_plugins_list, "list the plugins found (entry points and DATA_DIR/plugins)")
    plugin_enable = add(
        plugin_cmds, "enable", cmd_plugins_enable, "enable a plugin (its code then runs inside the panel)"
    )
    plugin_enable.add_argument("name")
    plugin_disable = add(plugin_cmds, "disable", cmd_plugins_disable, "disable a plugin")
    plugin_disable.add_argument("name")
    plugin_info = add(plugin_cmds, "info", cmd_plugins_info, "show a plugin's metadata, state and reason")
    plugin_info.add_argument("name")

    cache = commands.add_parser("cache", help="the cache in DATA_DIR/cache", description="the cache")
    cache_cmds = cache.add_subparsers(dest="cache_command", metavar="ACTION", parser_class=_Parser)
    cache_cmds.required = True
    add(cache_cmds, "clear", cmd_cache_clear, "empty every namespace (safe while the panel runs)")

    search = commands.add_parser("search", help="the search index", description="the search index")
    search_cmds = search.add_subparsers(dest="search_command", metavar="ACTION", parser_class=_Parser)
    search_cmds.required = True
    reindex = add(
        search_cmds,
        "reindex",
        cmd_search_reindex,
        "rebuild the search index from the database (safe while the panel runs)",
    )
    reindex.add_argument("--from-panel", action="store_true", help=argparse.SUPPRESS)

    db = commands.add_parser("db", help="database migrations", description="database migrations")
    db_cmds = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=_Parser)
    db_cmds.required = True
    up = add(db_cmds, "upgrade", cmd_db_upgrade, "migrate to REV (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    down = add(db_cmds, "downgrade", cmd_db_downgrade, "migrate down to REV (e.g. base or -1)")
    down.add_argument("revision")
    add(db_cmds, "current", cmd_db_current, "show the database's revision")
    add(db_cmds, "history", cmd_db_history, "list the migrations")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, NoxError) as exc:
        message = exc.message if isinstance(exc, NoxError) else str(exc)
        print(f"nox-ui: error: {message}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        print(
            f"nox-ui: error: invalid setting {where.upper() and 'NOX_' + where.upper()}: {first['msg']}",
            file=sys.stderr,
        )
        return 1
    except SQLAlchemyError as exc:
        print(
            f"nox-ui: error: database: {str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
