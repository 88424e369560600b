"""``ctictl``: the operator's command line, a SimProt client like any other.

Credentials come from ``--user`` plus ``CTICTL_PASSWORD`` (or a prompt), or from a TOML file named
by ``--config`` / ``$CTICTL_CONFIG`` with ``servers``, ``user`` and ``password``.  Every command
prints a readable table, or JSON with ``--json``.  Exit status: 0 ok, 1 the server refused
(the error code is printed), 2 bad usage or configuration, 3 cannot connect.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import time
import tomllib
from typing import Any

from simprot.client import SimProtClient
from simprot.errors import ConnectionClosed, RequestError

from . import ctl_ivr


class UsageError(Exception):
    pass


def _load_config(args: argparse.Namespace) -> dict[str, Any]:
    path = args.config or os.environ.get("CTICTL_CONFIG")
    conf: dict[str, Any] = {}
    if path and os.path.exists(path):
        try:
            with open(path, "rb") as f:
                conf = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path}: {exc}") from None
    elif args.config:
        raise UsageError(f"--config: no such file {args.config}")
    servers = args.server or conf.get("servers") or ["127.0.0.1:7400"]
    user = args.user or conf.get("user")
    password = os.environ.get("CTICTL_PASSWORD") or (conf.get("password") if not args.user else None)
    if not user:
        raise UsageError("--user: no user given (or set it in the file named by --config / CTICTL_CONFIG)")
    if password is None:
        password = getpass.getpass(f"password for {user}: ")
    return {"servers": servers, "user": user, "password": password}


def table(rows: list[dict], columns: list[str]) -> str:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(":".join(map(str, v)) if isinstance(v, list) else str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else text)


async def _run(args: argparse.Namespace) -> int:
    conf = _load_config(args)
    client = SimProtClient(conf["servers"], user=conf["user"], password=conf["password"],
                           client_name="ctictl", reconnect=args.command == "watch")
    try:
        await client.connect()
    except (ConnectionClosed, OSError) as exc:
        print(f"ctictl: cannot connect to {', '.join(map(str, conf['servers']))}: {exc}", file=sys.stderr)
        return 3
    try:
        return await COMMANDS[args.command](client, args)
    finally:
        await client.close()


async def cmd_status(client: SimProtClient, args: argparse.Namespace) -> int:
    s = await client.request("status")
    topics = ", ".join(f"{k}={v}" for k, v in sorted(s.get("topics", {}).items())) or "-"
    text = "\n".join([
        f"node         {s['node']} ({s['environment']}), ctiserver {s['version']}",
        f"role         {s['role']}", f"database     {s['database']}",
        f"uptime       {s['uptime']:.0f} s", f"connections  {s['connections']}",
        f"sessions     {s['sessions']}", f"events       {topics}",
    ])
    _print(args, s, text)
    return 0


async def cmd_watch(client: SimProtClient, args: argparse.Namespace) -> int:
    done = asyncio.Event()
    count = 0

    def on_event(topic: str, seq: int, name: str, data: Any) -> None:
        nonlocal count
        count += 1
        if args.json:
            print(json.dumps({"topic": topic, "seq": seq, "event": name, "data": data}, ensure_ascii=False),
                  flush=True)
        else:
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} {topic}#{seq} {name} {json.dumps(data, ensure_ascii=False)}", flush=True)
        if args.count and count >= args.count:
            done.set()

    def on_snapshot(topic: str, snap: Any) -> None:
        if args.snapshot:
            print(json.dumps({"topic": topic, "snapshot": snap}, ensure_ascii=False) if args.json
                  else f"-- {topic} snapshot: {json.dumps(snap, ensure_ascii=False)}", flush=True)

    for topic in args.topics or ["system", "sessions", "messages", "admin"]:
        try:
            await client.subscribe(topic, on_event, on_snapshot)
        except RequestError as exc:
            print(f"ctictl: {topic}: {exc.code.name}: {exc.message}", file=sys.stderr)
    if not args.json:
        print("-- watching; Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        await asyncio.wait_for(done.wait(), args.seconds) if args.seconds else await done.wait()
    except TimeoutError:
        pass
    return 0


async def cmd_accounts(client: SimProtClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        res = await client.request("accounts.list")
        _print(args, res, table(res["accounts"], ["id", "username", "kind", "scope", "enabled", "roles",
                                                  "display_name"]))
        return 0
    if args.action == "add":
        password = _new_password(args.username)
        req = {"username": args.username, "password": password, "kind": args.kind, "scope": args.scope,
               "display_name": args.name or ""}
        res = await client.request("accounts.add", req)
        _print(args, res, f"created {res['username']} (id {res['id']}, {res['kind']}, scope {res['scope']})")
        return 0
    if args.action == "password":
        password = _new_password(args.username)
        await client.request("accounts.password", {"username": args.username, "password": password})
        _print(args, {}, f"password of {args.username} changed")
        return 0
    if args.action in ("grant", "revoke"):
        res = await client.request(f"accounts.{args.action}", {"username": args.username, "role": args.role,
                                                               "scope": args.scope})
        _print(args, res, f"{res['username']}: roles now {_cell(res['roles'])}")
        return 0
    enabled = args.action == "enable"
    res = await client.request("accounts.enable", {"username": args.username, "enabled": enabled})
    _print(args, res, f"{args.username} {'enabled' if enabled else 'disabled'}")
    return 0


def _new_password(username: str) -> str:
    pw = os.environ.get("CTICTL_NEW_PASSWORD")
    if pw:
        return pw
    pw = getpass.getpass(f"new password for {username}: ")
    if getpass.getpass("again: ") != pw:
        raise UsageError("password: the two entries differ")
    return pw


async def cmd_workplaces(client: SimProtClient, args: argparse.Namespace) -> int:
    if args.action == "add":
        req = {"name": args.name, "extension": args.extension, "sip_uri": args.sip_uri or "",
               "location": args.location or ""}
        if args.sip_password:
            req["sip_password"] = _sip_password(args.name)
        res = await client.request("workplaces.add", req)
        auth = ", phone registers with a password" if res.get("sip_auth") else ""
        _print(args, res, f"created workplace {res['name']} (extension {res['extension']}{auth})")
        return 0
    if args.action == "sip-password":
        password = None if args.clear else _sip_password(args.name)
        res = await client.request("workplaces.set_sip_password", {"name": args.name, "sip_password": password})
        _print(args, res, f"workplace {res['name']}: " + ("SIP password set" if res["sip_auth"]
                                                          else "SIP password cleared; its phone may not register"))
        return 0
    res = await client.request("workplaces.list")
    _print(args, res, table(res["workplaces"], ["id", "name", "extension", "sip_uri", "location", "sip_auth"]))
    return 0


def _sip_password(workplace: str) -> str:
    """A phone's SIP password: from CTICTL_SIP_PASSWORD or a prompt (never argv: ps shows argv)."""
    pw = os.environ.get("CTICTL_SIP_PASSWORD")
    if pw:
        return pw
    pw = getpass.getpass(f"SIP password for the phone at {workplace}: ")
    if getpass.getpass("again: ") != pw:
        raise UsageError("sip password: the two entries differ")
    return pw


async def cmd_sessions(client: SimProtClient, args: argparse.Namespace) -> int:
    res = await client.request("sessions.list")
    rows = [{**s, "since": time.strftime("%H:%M:%S", time.localtime(s["since"]))} for s in res["sessions"]]
    _print(args, res, table(rows, ["conn", "account", "kind", "peer", "since"]))
    return 0


async def cmd_message(client: SimProtClient, args: argparse.Namespace) -> int:
    res = await client.request("messages.send", {"text": args.text, "to": args.to or "all"})
    _print(args, res, f"sent (event #{res['seq']})")
    return 0


async def _watching(args: argparse.Namespace, render) -> int:  # type: ignore[no-untyped-def]
    """Render once, or every second with --watch (bounded by --seconds when given)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + args.seconds if getattr(args, "seconds", 0) else None
    while True:
        await render()
        if not args.watch or (end is not None and loop.time() >= end):
            return 0
        await asyncio.sleep(1.0)


async def cmd_agents(client: SimProtClient, args: argparse.Namespace) -> int:
    async def render() -> None:
        snap = await client.request("acd.snapshot")
        now = time.time()
        rows = [{**a, "for": f"{now - a['since']:.0f}s", "misses": ",".join(f"{k}={v}" for k, v in a["misses"].items()
                                                                             if v)} for a in snap["agents"]]
        if args.watch and not args.json:
            print("\033[2J\033[H", end="")
        _print(args, snap["agents"], table(rows, ["agent", "state", "reason", "for", "contact", "pending",
                                                  "contacts_today", "misses"]))
    return await _watching(args, render)


async def cmd_projects(client: SimProtClient, args: argparse.Namespace) -> int:
    async def render() -> None:
        snap = await client.request("acd.snapshot")
        rows = [{**p, "oldest_wait": "" if p["oldest_wait"] is None else f"{p['oldest_wait']:.0f}s",
                 "service_level": "" if p["service_level"] is None else f"{100 * p['service_level']:.0f}%",
                 "ewt": f"{p['ewt']:.0f}s", "paused": "paused" if p["paused"] else ""} for p in snap["projects"]]
        if args.watch and not args.json:
            print("\033[2J\033[H", end="")
        text = table(rows, ["project", "waiting", "oldest_wait", "ewt", "ready_agents", "eligible_agents", "answered",
                            "abandoned", "callbacks", "service_level", "paused"])
        if snap["paused_channels"]:
            text += f"\npaused channels: {', '.join(snap['paused_channels'])}"
        _print(args, snap["projects"], text)
    return await _watching(args, render)


async def cmd_contacts(client: SimProtClient, args: argparse.Namespace) -> int:
    async def render() -> None:
        snap = await client.request("acd.snapshot")
        if args.watch and not args.json:
            print("\033[2J\033[H", end="")
        _print(args, snap["contacts"], table(snap["contacts"], ["contact", "project", "state", "position", "waited",
                                                                "agent", "owner"]))
    return await _watching(args, render)


async def cmd_calls(client: SimProtClient, args: argparse.Namespace) -> int:
    async def render() -> None:
        snap = await client.request("calls.list")
        rows = [{**c, "duration": f"{c['duration']:.0f}s",
                 "talking": "" if c["talking"] is None else f"{c['talking']:.0f}s"} for c in snap["calls"]]
        if args.watch and not args.json:
            print("\033[2J\033[H", end="")
        _print(args, snap["calls"], table(rows, ["call", "state", "caller", "pilot", "agent", "duration", "talking"]))
    return await _watching(args, render)


async def cmd_force(client: SimProtClient, args: argparse.Namespace) -> int:
    res = await client.request("acd.agent.force", {"agent": args.agent, "action": args.action,
                                                   "reason": args.reason or "supervisor"})
    _print(args, res, f"{res['agent']}: {res['state']}{' (pending ' + res['pending'] + ')' if res['pending'] else ''}")
    return 0


async def cmd_pause(client: SimProtClient, args: argparse.Namespace) -> int:
    res = await client.request(f"acd.{args.command}", {args.what: args.name})
    _print(args, res, f"{args.what} {args.name}: {'paused' if res['paused'] else 'distributing'}")
    return 0


async def cmd_enqueue(client: SimProtClient, args: argparse.Namespace) -> int:
    res = await client.request("contact.enqueue", {"project": args.project, "priority": args.priority,
                                                   "data": dict(kv.split("=", 1) for kv in args.data or [])})
    _print(args, res, f"{res['contact']}: {res['state']} in {res['project']}, position {res['position']}, "
                      f"EWT {res['ewt']:.0f} s")
    return 0


COMMANDS = {"status": cmd_status, "watch": cmd_watch, "accounts": cmd_accounts,
            "workplaces": cmd_workplaces, "sessions": cmd_sessions, "message": cmd_message,
            "agents": cmd_agents, "projects": cmd_projects, "contacts": cmd_contacts, "calls": cmd_calls,
            "force": cmd_force,
            "enqueue": cmd_enqueue, "pause": cmd_pause, "resume": cmd_pause,
            "ivr": lambda client, args: ctl_ivr.cmd_ivr(client, args, _print, table)}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctictl", description="Operate a ctiserver over SimProt.")
    p.add_argument("--server", "-s", action="append", metavar="HOST:PORT", help="server (repeatable; tried in order)")
    p.add_argument("--user", "-u", help="account name (password from CTICTL_PASSWORD or a prompt)")
    p.add_argument("--config", metavar="FILE", help="TOML with servers, user, password (default $CTICTL_CONFIG)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="node, role, database, connections")
    w = sub.add_parser("watch", help="the live event stream")
    w.add_argument("topics", nargs="*", help="system, sessions, messages, admin (default: all)")
    w.add_argument("--count", type=int, default=0, help="stop after this many events")
    w.add_argument("--seconds", type=float, default=0, help="stop after this many seconds")
    w.add_argument("--snapshot", action="store_true", help="also print each topic's snapshot")
    a = sub.add_parser("accounts", help="account administration")
    aa = a.add_subparsers(dest="action", required=True)
    aa.add_parser("list")
    add = aa.add_parser("add", help="password from CTICTL_NEW_PASSWORD or a prompt")
    add.add_argument("username")
    add.add_argument("--kind", default="agent", choices=["agent", "supervisor", "admin", "service"])
    add.add_argument("--scope", default="*")
    add.add_argument("--name", help="display name")
    pw = aa.add_parser("password", help="set a password (from CTICTL_NEW_PASSWORD or a prompt)")
    pw.add_argument("username")
    for verb in ("grant", "revoke"):
        g = aa.add_parser(verb)
        g.add_argument("username")
        g.add_argument("role")
        g.add_argument("--scope", default="*")
    for verb in ("enable", "disable"):
        aa.add_parser(verb).add_argument("username")
    wp = sub.add_parser("workplaces", help="agent seats and their extensions")
    wpa = wp.add_subparsers(dest="action", required=True)
    wpa.add_parser("list")
    wadd = wpa.add_parser("add")
    wadd.add_argument("name")
    wadd.add_argument("extension")
    wadd.add_argument("--sip-uri")
    wadd.add_argument("--location")
    wadd.add_argument("--sip-password", action="store_true",
                      help="the phone registers with a password (from CTICTL_SIP_PASSWORD or a prompt)")
    wsp = wpa.add_parser("sip-password", help="set the password the workplace's phone registers with "
                                              "(from CTICTL_SIP_PASSWORD or a prompt)")
    wsp.add_argument("name")
    wsp.add_argument("--clear", action="store_true", help="remove it: the phone may no longer register")
    sub.add_parser("sessions", help="who is logged in")
    m = sub.add_parser("message", help="send a message to agents")
    m.add_argument("text")
    m.add_argument("--to", action="append", help="user name (repeatable; default all)")
    for name, what in (("agents", "agents and their states"), ("projects", "queues: waiting, EWT, service level"),
                       ("contacts", "contacts in the system"), ("calls", "telephone calls in progress")):
        v = sub.add_parser(name, help=what)
        v.add_argument("--watch", action="store_true", help="refresh every second")
        v.add_argument("--seconds", type=float, default=0, help="with --watch: stop after this many seconds")
    f = sub.add_parser("force", help="supervisor: force an agent not ready or logged out")
    f.add_argument("agent")
    f.add_argument("action", choices=["not_ready", "logout"])
    f.add_argument("--reason")
    for verb, what in (("pause", "supervisor: stop offering a project's or a channel's contacts (they wait)"),
                       ("resume", "supervisor: distribute a paused project or channel again")):
        pz = sub.add_parser(verb, help=what)
        pz.add_argument("what", choices=["project", "channel"])
        pz.add_argument("name", help="project id, or voice / chat / email")
    ctl_ivr.add_parser(sub)
    e = sub.add_parser("enqueue", help="put a test contact into a project (needs contacts.enqueue)")
    e.add_argument("project")
    e.add_argument("--priority", type=int, default=0)
    e.add_argument("--data", action="append", metavar="KEY=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        import uvloop

        return uvloop.run(_run(args))
    except (UsageError, ctl_ivr.UsageError) as exc:
        print(f"ctictl: {exc}", file=sys.stderr)
        return 2
    except RequestError as exc:
        print(f"ctictl: {exc.code.name}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
