"""The database layer every daemon shares: an asyncpg pool on PostgreSQL, and schema migrations.

`Database.open(dsn)` connects, creates the pool and brings the schema up to date. With an empty DSN
it starts, or attaches to, an embedded PostgreSQL (the `pgserver` package) in a local data folder:
the same real PostgreSQL as production, so there is no second SQL dialect.

Embedded server lifetime (pgserver `cleanup_mode="stop"`): pgserver records every process attached
to a data folder in `<folder>/.handle_pids.json`. A process that finds the server running attaches
to it; the LAST attached process to exit stops it cleanly (an atexit hook, so it runs on a normal
interpreter exit, which our signal handling gives us). Several daemons can therefore share one
embedded server, nothing is left running once they have all exited, and the data stays on disk for
the next start ("delete" would remove it; `None` would leave a server running forever). A process
that dies without running atexit (SIGKILL) leaves the server running and a stale pid in that list;
the next start simply attaches to it, but from then on nobody stops it automatically.
`Database.close()` closes the pool only; the server stays up for the rest of the process.

Migrations are the files `ctiserver/migrations/NNNN_name.sql`, applied in version order, all of them
in ONE transaction that first takes a transaction-level advisory lock, so two nodes (or daemons)
starting together cannot apply the same file twice: the second waits, then sees nothing to do.
`cc.schema_migrations` records what was applied. A database that has a version this code does not
know (it was migrated by newer code) is refused rather than run against.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import os
import re
import subprocess
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

__all__ = [
    "EMBEDDED_DATABASE",
    "MIGRATION_LOCK_KEY",
    "Database",
    "DatabaseError",
    "Migration",
    "import_pgserver",
    "load_migrations",
    "migrate",
]

_log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "cc"
# Fixed key of the advisory lock that serialises migrations across every node and daemon
# ("ccmigr" in ASCII). Any bigint works as long as nothing else in the cluster uses it.
MIGRATION_LOCK_KEY = 0x63636D696772
# Migrations may rewrite big tables or wait for another node's migrations: give them longer than
# the pool's command_timeout meant for ordinary queries.
MIGRATION_TIMEOUT = 300.0

_BOOKKEEPING_SQL = """
CREATE SCHEMA IF NOT EXISTS cc;
CREATE TABLE IF NOT EXISTS cc.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# pgserver keeps per-process state (a handle cache per data folder) and guards start-up with a file
# lock, which excludes other processes but not other threads of this one: serialise our calls.
_embedded_lock = threading.Lock()


class DatabaseError(Exception):
    """The database cannot be used: unreachable, failed to start, or a schema this code cannot run on."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migration files shipped in the `ctiserver.migrations` folder, in version order."""
    folder = importlib.resources.files("ctiserver").joinpath("migrations")
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_FILE.match(entry.name)
        if match is None:
            raise DatabaseError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise DatabaseError(f"two migration files have version {version:04d}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(
    conn: asyncpg.Connection,
    *,
    migrations: Sequence[Migration] | None = None,
    timeout: float = MIGRATION_TIMEOUT,
) -> list[int]:
    """Apply the migrations not yet applied, in one transaction; return the versions applied.

    `migrations` defaults to the shipped files (tests pass their own).
    """
    known = sorted(load_migrations() if migrations is None else migrations, key=lambda m: m.version)
    # READ COMMITTED explicitly: each statement after the lock must see what a node that held the
    # lock before us committed (REPEATABLE READ would keep the snapshot taken before we waited).
    async with conn.transaction(isolation="read_committed"):
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY, timeout=timeout)
        # Checked first because CREATE SCHEMA, even IF NOT EXISTS, needs the CREATE privilege on
        # the database, which a production login role may rightly lack once the schema exists.
        if await conn.fetchval("SELECT to_regclass('cc.schema_migrations')") is None:
            await conn.execute(_BOOKKEEPING_SQL, timeout=timeout)
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM cc.schema_migrations")}
        unknown = sorted(applied - {m.version for m in known})
        if unknown:
            newest = known[-1].version if known else 0
            raise DatabaseError(
                f"the database has schema version(s) {', '.join(str(v) for v in unknown)} that this "
                f"code does not know (it knows up to {newest}); it was migrated by a newer release: "
                f"run that release or restore a matching backup"
            )
        done: list[int] = []
        for migration in known:
            if migration.version in applied:
                continue
            try:
                await conn.execute(migration.sql, timeout=timeout)
            except asyncpg.PostgresError as exc:
                label = f"{migration.version:04d}_{migration.name}"
                raise DatabaseError(f"migration {label} failed: {exc}") from exc
            await conn.execute(
                "INSERT INTO cc.schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            done.append(migration.version)
    if done:
        _log.info("applied migrations %s", ", ".join(f"{v:04d}" for v in done))
    return done


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    dsn = re.sub(r"(://[^:/@?]*:)[^@/?]*@", r"\1***@", dsn)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", dsn)


def import_pgserver() -> Any:
    """The `pgserver` module, imported on first use (the embedded server and the test fixtures)."""
    # Not at module level: it costs time, and on import it asks platformdirs for a runtime folder,
    # which warns when XDG_RUNTIME_DIR is unset (systemd services, containers).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver

    return pgserver


def _start_embedded(pgserver: Any, folder: Path) -> tuple[str, str]:
    """Start or attach to the embedded server in `folder`. Blocking. Returns (admin URI, cc URI)."""
    folder = folder.expanduser().resolve()
    try:
        # pgserver creates only the last path component itself.
        folder.mkdir(parents=True, exist_ok=True)
        with _embedded_lock:
            server = pgserver.get_server(folder, cleanup_mode="stop")
            return server.get_uri(), server.get_uri(EMBEDDED_DATABASE)
    except (OSError, subprocess.SubprocessError, AssertionError, RuntimeError) as exc:
        raise DatabaseError(
            f"cannot start the embedded PostgreSQL in {folder}: {exc!r} (its log is {folder / 'log'})"
        ) from exc


async def _ensure_database(admin_uri: str, name: str, timeout: float) -> None:
    conn = await asyncpg.connect(admin_uri, timeout=timeout)
    try:
        exists = await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                _log.info("created database %s in the embedded server", name)
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                pass  # another process attached at the same moment and created it first
    finally:
        await conn.close()


@dataclass
class Database:
    """An open connection pool on a migrated database. Create with `await Database.open(dsn)`."""

    pool: asyncpg.Pool
    dsn: str = field(repr=False)  # may hold a password
    embedded: bool

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        embedded_dir: str | Path = "var/pgdata",
        pool_min: int = 1,
        pool_max: int = 10,
        command_timeout: float = 10.0,
    ) -> Database:
        """Connect to `dsn` (or the embedded server when it is ""), create the pool and migrate."""
        embedded = not dsn
        try:
            if embedded:
                # Imported here, not in the thread: catch_warnings is not thread-safe.
                pgserver = import_pgserver()
                admin_uri, dsn = await asyncio.to_thread(_start_embedded, pgserver, Path(embedded_dir))
                await _ensure_database(admin_uri, EMBEDDED_DATABASE, command_timeout)
            pool = await asyncpg.create_pool(
                dsn,
                min_size=pool_min,
                max_size=pool_max,
                command_timeout=command_timeout,
                timeout=command_timeout,  # connection establishment
            )
        except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseError(f"cannot connect to the database at {_redact(dsn)}: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)):
                raise DatabaseError(f"cannot migrate the database at {_redact(dsn)}: {exc}") from exc
            raise
        return cls(pool=pool, dsn=dsn, embedded=embedded)

    async def close(self, timeout: float = 10.0) -> None:
        """Close the pool, waiting up to `timeout` for connections in use, then cut them."""
        try:
            await asyncio.wait_for(self.pool.close(), timeout)
        except TimeoutError:
            _log.warning("database pool did not close within %.1f s; terminating it", timeout)
            self.pool.terminate()


def remove_abandoned_clusters(prefix: str, parent: Path | None = None, min_age: float = 60.0) -> int:
    """Stop and delete throwaway embedded clusters (folders ``<parent>/<prefix>*/pgdata``) whose
    processes were all killed before they could clean up (SIGKILL, SIGPIPE). A cluster counts as
    abandoned only when every process pgserver recorded as attached is gone and its list is older
    than ``min_age`` seconds (a session starting right now is left alone). Used by the test suite
    and the benchmarks for their temporary clusters; returns how many were removed."""
    import json
    import shutil
    import tempfile
    import time

    import psutil

    pgserver = import_pgserver()
    user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs postgres as that user under root
    removed = 0
    for pgdata in Path(parent or tempfile.gettempdir()).glob(f"{prefix}*/pgdata"):
        pids_file = pgdata / ".handle_pids.json"
        try:
            pids = json.loads(pids_file.read_text())
            age = time.time() - pids_file.stat().st_mtime
        except (OSError, ValueError):
            continue
        if age < min_age or any(psutil.pid_exists(pid) for pid in pids):
            continue
        if (pgdata / "postmaster.pid").exists():
            try:
                pgserver.pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=pgdata, user=user)
            except (OSError, subprocess.SubprocessError):
                continue  # leave what we cannot stop
        shutil.rmtree(pgdata.parent, ignore_errors=True)
        removed += 1
    return removed
