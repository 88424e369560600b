"""Shared fixtures. Database: ONE PostgreSQL for the whole session, a fresh database per test.

- `pg_dsn` (session): starts one embedded PostgreSQL (pgserver) in a temporary folder, or uses the
  server named by CTISERVER_TEST_DSN (e.g. a Debian postgresql); returns the DSN of a fresh, empty
  database on it. Any database on that server serves as the maintenance connection below.
  Clusters of earlier sessions that were killed before cleaning up are swept away first.
- `fresh_dsn(pg_dsn)`: creates another empty database on the same server, returns its DSN;
  `drop_dsn(pg_dsn, dsn)` drops it again.
- `db` (per test): a migrated `Database` on its own fresh database, closed and dropped afterwards.

Speed: the embedded test server runs with fsync off (its data is thrown away anyway). `db` copies a
database migrated once per session (migrating costs ~30 ms, copying is the same price as an empty
CREATE DATABASE), and creates the next test's copy in the background while the current test runs,
so a test usually gets its database in a few ms instead of ~100.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ctiserver.db import Database, import_pgserver, remove_abandoned_clusters

_PREFIX = "cc-pgtest-"
_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def _with_database(dsn: str, name: str) -> str:
    """`dsn` pointing at database `name` instead (URI DSNs, as pgserver and asyncpg use)."""
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def fresh_dsn(pg_dsn: str, *, template: str = "template1") -> str:
    """Create a database (empty, or a copy of `template`) on the server of `pg_dsn`; return its DSN."""
    name = f"test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(pg_dsn)
    try:
        # FILE_COPY (PostgreSQL 15+) is the cheaper strategy for a small template, most of all
        # with fsync off; the default WAL_LOG is meant for big ones.
        strategy = " STRATEGY FILE_COPY" if conn.get_server_version().major >= 15 else ""
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
    finally:
        await conn.close()
    return _with_database(pg_dsn, name)


async def drop_dsn(pg_dsn: str, dsn: str) -> None:
    """Drop the database of `dsn` (made by `fresh_dsn`), cutting any connection still open to it."""
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _prepare_server(admin_dsn: str, *, fast: bool) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        if fast:
            for key, value in _FAST_SETTINGS.items():
                await conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
            await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    return await fresh_dsn(admin_dsn)


@pytest.fixture(scope="session")
def _pg_admin_dsn() -> Iterator[tuple[str, bool]]:
    """(DSN of a maintenance database, whether the server is our own throwaway embedded one)."""
    external = os.environ.get("CTISERVER_TEST_DSN", "")
    if external:
        yield external, False
        return
    pgserver = import_pgserver()
    remove_abandoned_clusters(_PREFIX)
    folder = Path(tempfile.mkdtemp(prefix=_PREFIX)) / "pgdata"
    # "delete": stop the server and remove its folder when the session ends.
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri(), True
    finally:
        server.cleanup()
        shutil.rmtree(folder.parent, ignore_errors=True)


@pytest.fixture(scope="session")
async def pg_dsn(_pg_admin_dsn: tuple[str, bool]) -> AsyncIterator[str]:
    admin_dsn, ours = _pg_admin_dsn
    dsn = await _prepare_server(admin_dsn, fast=ours)
    yield dsn
    await drop_dsn(admin_dsn, dsn)


class _MigratedDatabases:
    """Hands out copies of a migrated template database, always preparing the next one ahead."""

    def __init__(self, pg_dsn: str, template_dsn: str) -> None:
        self._pg_dsn = pg_dsn
        self._template_dsn = template_dsn
        self._template = urlsplit(template_dsn).path.lstrip("/")
        self._next: asyncio.Task[str] | None = None

    def _prepare(self) -> None:
        self._next = asyncio.ensure_future(fresh_dsn(self._pg_dsn, template=self._template))

    async def take(self) -> str:
        if self._next is None:
            self._prepare()
        assert self._next is not None
        task, self._next = self._next, None
        dsn = await task
        self._prepare()
        return dsn

    async def close(self) -> None:
        if self._next is not None:
            await drop_dsn(self._pg_dsn, await self._next)
        await drop_dsn(self._pg_dsn, self._template_dsn)


@pytest.fixture(scope="session")
async def _migrated_databases(pg_dsn: str) -> AsyncIterator[_MigratedDatabases]:
    template_dsn = await fresh_dsn(pg_dsn)
    database = await Database.open(template_dsn, pool_min=1, pool_max=1)
    await database.close()
    factory = _MigratedDatabases(pg_dsn, template_dsn)
    yield factory
    await factory.close()


@pytest.fixture
async def db(pg_dsn: str, _migrated_databases: _MigratedDatabases) -> AsyncIterator[Database]:
    dsn = await _migrated_databases.take()
    # Database.open still runs migrate(): it finds everything applied, as on a node's restart.
    database = await Database.open(dsn, pool_min=1, pool_max=4)
    try:
        yield database
    finally:
        await database.close()
        await drop_dsn(pg_dsn, dsn)
