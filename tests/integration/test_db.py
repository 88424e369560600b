import asyncio
import json
import os
import sys
from pathlib import Path

import asyncpg
import pytest

from ctiserver.db import (
    EMBEDDED_DATABASE,
    Database,
    DatabaseError,
    Migration,
    import_pgserver,
    load_migrations,
    migrate,
)
from tests.conftest import drop_dsn, fresh_dsn

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def empty_dsn(pg_dsn):
    dsn = await fresh_dsn(pg_dsn)
    yield dsn
    await drop_dsn(pg_dsn, dsn)


async def _versions(conn):
    return [r["version"] for r in await conn.fetch("SELECT version FROM cc.schema_migrations ORDER BY 1")]


def test_shipped_migrations_are_numbered_from_one():
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "accounts"


async def test_migrate_applies_all_then_nothing(empty_dsn):
    known = [m.version for m in load_migrations()]
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert await migrate(conn) == known
        assert await migrate(conn) == []
        assert await _versions(conn) == known
        roles = {r["role"] for r in await conn.fetch("SELECT role FROM cc.roles")}
        assert roles == {"admin", "supervisor", "agent", "service"}
        # admin holds every permission there is
        assert await conn.fetchval("SELECT count(*) FROM cc.role_permissions WHERE role = 'admin'") == \
            await conn.fetchval("SELECT count(*) FROM cc.permissions") == 13
    finally:
        await conn.close()


async def test_concurrent_migrate_applies_each_version_once(empty_dsn):
    known = [m.version for m in load_migrations()]
    one, two = await asyncpg.connect(empty_dsn), await asyncpg.connect(empty_dsn)
    try:
        results = await asyncio.gather(migrate(one), migrate(two))
        assert sorted(results) == [[], known]
        assert await _versions(one) == known
    finally:
        await one.close()
        await two.close()


async def test_failing_migration_rolls_back_everything(empty_dsn):
    broken = [*load_migrations(), Migration(900, "broken", "CREATE TABLE cc.x (id int); SELECT 1/0;")]
    conn = await asyncpg.connect(empty_dsn)
    try:
        with pytest.raises(DatabaseError, match="migration 0900_broken failed"):
            await migrate(conn, migrations=broken)
        # One transaction: not even 0001 or the bookkeeping table stayed.
        assert await conn.fetchval("SELECT to_regclass('cc.schema_migrations')") is None
        assert await migrate(conn) == [m.version for m in load_migrations()]
    finally:
        await conn.close()


async def test_newer_database_is_refused(empty_dsn):
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn)
        await conn.execute("INSERT INTO cc.schema_migrations (version, name) VALUES (9999, 'future')")
        with pytest.raises(DatabaseError, match="9999"):
            await migrate(conn)
    finally:
        await conn.close()
    with pytest.raises(DatabaseError, match="newer release"):
        await Database.open(empty_dsn)


async def test_open_migrates_and_closes(empty_dsn):
    database = await Database.open(empty_dsn, pool_min=1, pool_max=2)
    try:
        assert not database.embedded
        assert await database.pool.fetchval("SELECT count(*) FROM cc.scopes WHERE scope = '*'") == 1
        assert "dsn" not in repr(database)
    finally:
        await database.close()


async def test_unreachable_database_is_a_clear_error(tmp_path):
    dsn = f"postgresql://cc:secret@/cc?host={tmp_path}"  # no server listens there
    with pytest.raises(DatabaseError, match="cannot connect") as info:
        await Database.open(dsn, command_timeout=2)
    assert "secret" not in str(info.value)


async def _run_child(folder: Path, code: str) -> str:
    """Run `code` in a separate Python process that opens the embedded Database in `folder`."""
    script = (
        "import asyncio, sys\n"
        "from ctiserver.db import Database\n"
        "async def main():\n"
        f"    db = await Database.open('', embedded_dir={str(folder)!r}, pool_max=2)\n"
        "    try:\n"
        + "".join(f"        {line}\n" for line in code.splitlines())
        + "    finally:\n"
        "        await db.close()\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_embedded_server_is_shared_and_keeps_data(tmp_path):
    folder = tmp_path / "deep" / "pgdata"  # parents are created as needed

    # A first process starts the server, creates the database and writes; on exit, as the last
    # attached process, it stops the server.
    out = await _run_child(
        folder,
        "await db.pool.execute(\"INSERT INTO cc.scopes VALUES ('team-a', 'kept')\")\n"
        "print(db.embedded, await db.pool.fetchval('SELECT current_database()'))",
    )
    assert out.split() == ["True", EMBEDDED_DATABASE]
    assert not (folder / "postmaster.pid").exists(), "the last process out should stop the server"

    # We start it again from the same folder: the data is still there, nothing left to migrate.
    database = await Database.open("", embedded_dir=folder, pool_max=2)
    try:
        assert database.embedded
        assert await database.pool.fetchval("SELECT current_database()") == EMBEDDED_DATABASE
        assert await database.pool.fetchval("SELECT description FROM cc.scopes WHERE scope = 'team-a'") == "kept"
        assert await database.pool.fetchval("SELECT count(*) FROM cc.schema_migrations") == len(
            load_migrations()
        )

        # A second process attaches to the running server, reads, and exits: the server must
        # stay up for us, because we are still attached.
        out = await _run_child(
            folder, "print(await db.pool.fetchval(\"SELECT description FROM cc.scopes WHERE scope = 'team-a'\"))"
        )
        assert out.strip() == "kept"
        async with database.pool.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
        assert json.loads((folder / ".handle_pids.json").read_text()) == [os.getpid()]
    finally:
        await database.close()
        # Release our handle now (we are the last one: this stops the server) rather than at exit.
        import_pgserver().get_server(folder).cleanup()
    assert not (folder / "postmaster.pid").exists()
