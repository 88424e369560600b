"""``ctiserver``: run the daemon, check a configuration, bootstrap the first admin."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

from .settings import ConfigError, Settings, load_settings, settings_to_dict


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, overrides=args.set)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctiserver", description="The contact-centre CTI core.")
    p.add_argument("--config", "-c", metavar="FILE", help="TOML configuration (see docs/configuration.md)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable); beats file and environment")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("run", help="run the daemon (the default)")
    cc = sub.add_parser("check-config", help="validate a configuration and print the effective settings")
    cc.add_argument("file", nargs="?", metavar="FILE")
    ba = sub.add_parser("bootstrap-admin", help="create an admin account directly in the database")
    ba.add_argument("username")
    ba.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    return p


async def _bootstrap_admin(settings: Settings, username: str, password: str) -> int:
    from .accounts import AccountError, AccountStore
    from .db import Database

    db = await Database.open(settings.database.dsn, embedded_dir=settings.database.embedded_dir,
                             pool_min=1, pool_max=2, command_timeout=settings.database.command_timeout)
    try:
        account = await AccountStore(db.pool).create(username, password, kind="admin", display_name=username)
    except AccountError as exc:
        print(f"ctiserver: {exc}", file=sys.stderr)
        return 2
    finally:
        await db.close()
    print(f"created admin account {account.username!r} (id {account.id})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config" and args.file:
        args.config = args.file
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"ctiserver: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(json.dumps(settings_to_dict(settings), indent=2))
        return 0
    from .logs import setup_logging

    setup_logging(settings.log.level, settings.log.format)
    if args.command == "bootstrap-admin":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass(f"password for {args.username}: ")
        return asyncio.run(_bootstrap_admin(settings, args.username, password))
    import uvloop

    return uvloop.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    from .app import serve

    return await serve(settings)


if __name__ == "__main__":
    sys.exit(main())
