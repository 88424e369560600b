"""A running ctiserver (real SimProt over TCP, real PostgreSQL) for integration tests.

`core` starts the full App on free ports against a fresh database, with a cheap KDF and short
timeouts, creates an admin and an agent, and stops everything after the test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from ctiserver.app import App
from ctiserver.settings import Settings, load_settings
from simprot.client import SimProtClient
from tests.conftest import drop_dsn, fresh_dsn

ADMIN, ADMIN_PW = "admin", "admin-pass-1"
AGENT, AGENT_PW = "agent1", "agent-pass-1"


@dataclass
class Core:
    app: App
    settings: Settings

    @property
    def address(self) -> str:
        host, port = self.app.simprot_address
        return f"{host}:{port}"

    def client(self, user: str = ADMIN, password: str = ADMIN_PW, **kw: object) -> SimProtClient:
        kw.setdefault("reconnect", False)
        return SimProtClient([self.address], user=user, password=password, client_name="pytest", **kw)  # type: ignore[arg-type]

    async def connected(self, user: str = ADMIN, password: str = ADMIN_PW, **kw: object) -> SimProtClient:
        c = self.client(user, password, **kw)
        await c.connect()
        return c


def core_settings(dsn: str, **simprot: object) -> Settings:
    base = load_settings(None, env={}, overrides=["simprot.port=0", "http.port=0", "log.format=text"])
    sp = dataclasses.replace(base.simprot, **{"heartbeat_interval": 5.0, "heartbeat_timeout": 15.0, **simprot})
    db = dataclasses.replace(base.database, dsn=dsn, pool_max=5)
    return dataclasses.replace(base, simprot=sp, database=db)


@pytest.fixture
async def core_factory(pg_dsn: str) -> AsyncIterator:
    started: list[tuple[App, str]] = []

    async def start(**simprot: object) -> Core:
        dsn = await fresh_dsn(pg_dsn)
        app = App(core_settings(dsn, **simprot), scrypt_n=2**10)
        await app.start()
        assert app.service is not None
        await app.service.accounts.create(ADMIN, ADMIN_PW, kind="admin")
        await app.service.accounts.create(AGENT, AGENT_PW, kind="agent")
        started.append((app, dsn))
        return Core(app, app.settings)

    yield start
    for app, dsn in started:
        await app.stop(grace=0.5)
        await drop_dsn(pg_dsn, dsn)


@pytest.fixture
async def core(core_factory) -> Core:
    return await core_factory()
