import asyncio

import pytest

from ctiserver.accounts import Account, AccountError, AccountStore, WorkplaceError, WorkplaceStore

FAST = 2**10  # low scrypt cost for tests only
PASSWORD = "correct horse"


@pytest.fixture
def store(db):
    return AccountStore(db.pool, scrypt_n=FAST)


@pytest.fixture
def workplaces(db):
    return WorkplaceStore(db.pool)


async def test_create_defaults_to_role_of_its_kind(store):
    account = await store.create("Alice", PASSWORD, display_name="Alice A.")
    assert isinstance(account, Account)
    assert (account.username, account.display_name, account.kind, account.scope) == (
        "alice", "Alice A.", "agent", "*"
    )
    assert account.enabled
    assert account.roles == (("agent", "*"),)
    assert account.permissions == {("status.read", "*"), ("events.watch", "*"), ("acd.agent", "*")}
    assert account.allows("status.read") and account.allows("events.watch", "team-a")
    assert not account.allows("accounts.manage")
    assert await store.get("alice") == account
    assert await store.get("ALICE") == account
    assert await store.get_by_id(account.id) == account


async def test_get_unknown_is_none(store):
    assert await store.get("nobody") is None
    assert await store.get("not a valid name!") is None
    assert await store.get_by_id(424242) is None


async def test_list_is_sorted_by_username(store):
    await store.create("zed", PASSWORD)
    await store.create("amy", PASSWORD, kind="supervisor")
    assert [a.username for a in await store.list()] == ["amy", "zed"]


async def test_admin_holds_every_permission(store):
    admin = await store.create("root", PASSWORD, kind="admin")
    assert admin.roles == (("admin", "*"),)
    assert {p for p, _ in admin.permissions} == {
        "status.read", "events.watch", "accounts.read", "accounts.manage",
        "messages.send", "workplaces.read", "workplaces.manage", "sessions.read",
        "acd.agent", "acd.supervise", "acd.configure", "contacts.enqueue", "ivr.configure",
    }


async def test_scoped_roles_grant_and_revoke(db, store):
    await db.pool.execute("INSERT INTO cc.scopes (scope) VALUES ('team-a'), ('team-b')")
    sup = await store.create("sue", PASSWORD, kind="supervisor", scope="team-a")
    assert sup.scope == "team-a"
    assert sup.roles == (("supervisor", "team-a"),)
    assert sup.allows("accounts.read", "team-a")
    assert not sup.allows("accounts.read", "team-b")
    assert not sup.allows("accounts.read")  # '*' asks for the whole centre

    sup = await store.grant("sue", "supervisor", "team-b")
    assert sup.roles == (("supervisor", "team-a"), ("supervisor", "team-b"))
    assert sup.allows("accounts.read", "team-b")
    assert await store.grant("sue", "supervisor", "team-b") == sup  # idempotent

    sup = await store.grant("sue", "admin")
    assert sup.allows("accounts.manage", "anything")
    sup = await store.revoke("sue", "admin")
    assert not sup.allows("accounts.manage", "team-a")
    sup = await store.revoke("sue", "supervisor", "team-a")
    assert sup.roles == (("supervisor", "team-b"),)
    assert await store.get("sue") == sup


async def test_explicit_roles_replace_the_default(store):
    account = await store.create("svc", PASSWORD, kind="service", roles=[("agent", "*"), ("service", "*")])
    assert account.roles == (("agent", "*"), ("service", "*"))
    bare = await store.create("bare", PASSWORD, roles=[])
    assert bare.roles == () and bare.permissions == frozenset()
    assert not bare.allows("status.read")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"username": ""}, "username"),
        ({"username": "x" * 65}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "jos\u00e9"}, "username"),
        ({"kind": "boss"}, "kind"),
        ({"password": "short"}, "password"),
        ({"display_name": "bad\x00name"}, "display_name"),
        ({"scope": "no-such-scope"}, "scope"),
        ({"roles": [("wizard", "*")]}, "roles"),
        ({"roles": [("agent", "no-such-scope")]}, "roles"),
        ({"roles": ["agent"]}, "roles"),
    ],
)
async def test_create_validation_names_the_field(store, kwargs, field):
    args = {"username": "valid", "password": PASSWORD, **kwargs}
    with pytest.raises(AccountError) as info:
        await store.create(args.pop("username"), args.pop("password"), **args)
    assert info.value.code == "invalid"
    assert str(info.value).startswith(f"{field}: ")
    assert await store.list() == []  # nothing half-created


async def test_unknown_role_and_scope_messages_carry_the_value(store):
    with pytest.raises(AccountError, match="roles: unknown role 'wizard'"):
        await store.create("valid", PASSWORD, roles=[("wizard", "*")])
    await store.create("valid", PASSWORD)
    with pytest.raises(AccountError, match="scope: unknown scope 'nowhere'") as info:
        await store.grant("valid", "agent", "nowhere")
    assert info.value.code == "invalid"


async def test_duplicate_username_is_conflict(store):
    await store.create("bob", PASSWORD)
    with pytest.raises(AccountError) as info:
        await store.create("BOB", PASSWORD)
    assert info.value.code == "conflict"
    assert str(info.value).startswith("username: ")


async def test_changes_to_unknown_account_are_not_found(store):
    for call in (
        store.set_password("ghost", PASSWORD),
        store.set_enabled("ghost", False),
        store.grant("ghost", "agent"),
        store.revoke("ghost", "agent"),
    ):
        with pytest.raises(AccountError) as info:
            await call
        assert info.value.code == "not_found"
        assert str(info.value).startswith("username: ")


async def test_authenticate(store):
    created = await store.create("carol", PASSWORD)
    assert await store.authenticate("carol", PASSWORD) == created
    assert await store.authenticate("Carol", PASSWORD) == created
    assert await store.authenticate("carol", "wrong password") is None
    assert await store.authenticate("nobody", PASSWORD) is None
    assert await store.authenticate("bad name!", PASSWORD) is None

    await store.set_enabled("carol", False)
    assert await store.authenticate("carol", PASSWORD) is None
    disabled = await store.get("carol")
    assert disabled is not None and not disabled.enabled
    assert not disabled.allows("status.read")  # a disabled account is allowed nothing
    await store.set_enabled("carol", True)
    assert await store.authenticate("carol", PASSWORD) is not None


async def test_set_password(store):
    await store.create("dave", PASSWORD)
    with pytest.raises(AccountError, match="^password: ") as info:
        await store.set_password("dave", "short")
    assert info.value.code == "invalid"
    await store.set_password("dave", "a new passphrase")
    assert await store.authenticate("dave", PASSWORD) is None
    assert await store.authenticate("dave", "a new passphrase") is not None


async def test_concurrent_logins_all_succeed(store):
    await store.create("erin", PASSWORD)
    results = await asyncio.gather(*(store.authenticate("erin", PASSWORD) for _ in range(10)))
    assert all(r is not None and r.username == "erin" for r in results)


async def test_tokens(db, store):
    account = await store.create("frank", PASSWORD)
    token = await store.issue_token(account.id, ttl=60)
    assert isinstance(token, str) and len(token) >= 43
    assert await store.authenticate_token(token) == account
    assert await store.authenticate_token(token + "x") is None
    assert await store.authenticate_token("") is None
    # Only the hash is stored.
    stored = await db.pool.fetchval("SELECT token_hash FROM cc.resume_tokens")
    assert len(stored) == 32 and token.encode() not in stored

    await store.set_enabled("frank", False)  # disabling revokes
    assert await store.authenticate_token(token) is None
    await store.set_enabled("frank", True)

    token = await store.issue_token(account.id, ttl=60)
    await store.set_password("frank", "another passphrase")  # changing the password revokes
    assert await store.authenticate_token(token) is None

    token = await store.issue_token(account.id, ttl=60)
    await store.revoke_tokens(account.id)
    assert await store.authenticate_token(token) is None


async def test_expired_tokens_are_refused_and_deleted(db, store):
    account = await store.create("gina", PASSWORD)
    token = await store.issue_token(account.id, ttl=60)
    await db.pool.execute("UPDATE cc.resume_tokens SET expires_at = now() - interval '1 second'")
    assert await store.authenticate_token(token) is None
    assert await db.pool.fetchval("SELECT count(*) FROM cc.resume_tokens") == 0


async def test_token_validation(store):
    account = await store.create("hank", PASSWORD)
    for ttl in (0, -1, float("nan"), float("inf")):
        with pytest.raises(AccountError, match="^ttl: ") as info:
            await store.issue_token(account.id, ttl=ttl)
        assert info.value.code == "invalid"
    with pytest.raises(AccountError) as info:
        await store.issue_token(account.id + 1000, ttl=60)
    assert info.value.code == "not_found"


async def test_count_admins(store):
    assert await store.count_admins() == 0
    await store.create("root", PASSWORD, kind="admin")
    await store.create("ops", PASSWORD, kind="supervisor")
    assert await store.count_admins() == 1
    await store.grant("ops", "admin")
    assert await store.count_admins() == 2
    await store.set_enabled("root", False)
    assert await store.count_admins() == 1
    await store.revoke("ops", "admin")
    assert await store.count_admins() == 0


async def test_deleting_an_account_cascades(db, store):
    account = await store.create("ivan", PASSWORD)
    await store.issue_token(account.id, ttl=60)
    await db.pool.execute("DELETE FROM cc.accounts WHERE id = $1", account.id)
    assert await db.pool.fetchval("SELECT count(*) FROM cc.account_roles") == 0
    assert await db.pool.fetchval("SELECT count(*) FROM cc.resume_tokens") == 0


async def test_workplaces(workplaces):
    assert await workplaces.list() == []
    first = await workplaces.add("Seat 2", "1002", sip_uri="sip:1002@pbx.example", location="floor 1")
    assert {k: first[k] for k in ("name", "extension", "sip_uri", "location")} == {
        "name": "Seat 2", "extension": "1002", "sip_uri": "sip:1002@pbx.example", "location": "floor 1",
    }
    assert isinstance(first["id"], int) and first["created_at"] is not None
    await workplaces.add("Seat 1", "1001")
    assert [w["name"] for w in await workplaces.list()] == ["Seat 1", "Seat 2"]


async def test_workplace_conflicts_and_validation(workplaces):
    await workplaces.add("Seat 1", "1001")
    with pytest.raises(WorkplaceError) as info:
        await workplaces.add("Seat 9", "1001")
    assert info.value.code == "conflict" and str(info.value).startswith("extension: ")
    with pytest.raises(AccountError) as info:  # one except covers both stores
        await workplaces.add("Seat 1", "1009")
    assert info.value.code == "conflict" and str(info.value).startswith("name: ")
    for args, field in ((("", "1003"), "name"), (("Seat 3", "10 03"), "extension"), (("Seat 3", ""), "extension")):
        with pytest.raises(WorkplaceError) as info:
            await workplaces.add(*args)
        assert info.value.code == "invalid" and str(info.value).startswith(f"{field}: ")
    assert len(await workplaces.list()) == 1
