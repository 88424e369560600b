"""``ctictl ivr ...``: the IVR's call flows and the holidays (IVR-1, IVR-2; permission ivr.configure).

    ctictl ivr sessions [--limit N] [--hours H]   the latest IVR sessions, and outcomes per flow
    ctictl ivr flows                  the stored flows and their pilots
    ctictl ivr load FILE              validate a flow file (TOML or JSON) here, then store it
    ctictl ivr show NAME              a stored flow, as JSON
    ctictl ivr delete NAME
    ctictl ivr holidays               the holidays (the IVR treats them as closed all day)
    ctictl ivr holiday-add DAY [NAME] (DAY as YYYY-MM-DD)
    ctictl ivr holiday-remove DAY
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from simprot.client import SimProtClient


class UsageError(Exception):
    pass


def add_parser(sub: Any) -> None:
    iv = sub.add_parser("ivr", help="the IVR's call flows and holidays")
    acts = iv.add_subparsers(dest="action", required=True)
    acts.add_parser("flows")
    se = acts.add_parser("sessions")
    se.add_argument("--limit", type=int, default=20)
    se.add_argument("--hours", type=float, default=24.0, help="the outcome counts cover this many hours")
    acts.add_parser("load").add_argument("file")
    acts.add_parser("show").add_argument("name")
    acts.add_parser("delete").add_argument("name")
    acts.add_parser("holidays")
    ha = acts.add_parser("holiday-add")
    ha.add_argument("day")
    ha.add_argument("name", nargs="?", default="")
    acts.add_parser("holiday-remove").add_argument("day")


async def cmd_ivr(client: SimProtClient, args: argparse.Namespace, show: Any, table: Any) -> int:
    a = args.action
    if a == "load":
        from ivr_engine.flow import FlowError, load_flow_file

        try:
            flow = load_flow_file(args.file)
        except FlowError as exc:
            raise UsageError(str(exc)) from None
        res = await client.request("ivr.flow.put", {"flow": flow.to_doc()})
        show(args, res, f"stored flow {res['name']} ({res['steps']} steps, pilots {', '.join(res['pilots']) or '-'})")
    elif a == "show":
        res = await client.request("ivr.flow.get", {"name": args.name})
        show(args, res, json.dumps(res["flow"], indent=2, ensure_ascii=False))
    elif a == "delete":
        res = await client.request("ivr.flow.delete", {"name": args.name})
        show(args, res, f"deleted flow {res['name']}")
    elif a == "sessions":
        res = await client.request("ivr.sessions", {"limit": args.limit, "hours": args.hours})
        rows = [{**r, "ended": time.strftime("%H:%M:%S", time.localtime(r["ended"]))} for r in res["sessions"]]
        show(args, res, table(rows, ["ended", "contact", "flow", "caller", "stage", "outcome", "seconds"])
             + f"\n\noutcomes in the last {res['hours']:g} h:\n" + table(res["outcomes"], ["flow", "outcome", "n"]))
    elif a == "holidays":
        res = await client.request("ivr.holidays")
        show(args, res, table(res["holidays"], ["day", "name"]))
    elif a == "holiday-add":
        res = await client.request("ivr.holiday.put", {"day": args.day, "name": args.name})
        show(args, res, f"{res['day']} is a holiday ({res['name'] or 'no name'})")
    elif a == "holiday-remove":
        res = await client.request("ivr.holiday.delete", {"day": args.day})
        show(args, res, f"{res['day']} is no longer a holiday")
    else:
        res = await client.request("ivr.flows")
        rows = [{**f, "pilots": ", ".join(f["pilots"])} for f in res["flows"]]
        show(args, res, table(rows, ["name", "pilots", "steps", "updated_by"]))
    return 0
