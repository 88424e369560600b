"""``ivr-engine``: run the IVR daemon, check a call flow, make the demo prompts.

    ivr-engine --config config/demo.toml [run]     the daemon (Ctrl-C / SIGTERM stop it)
    ivr-engine check-flow FILE [--prompts DIR]     validate a flow file (TOML or JSON); with
                                                   --prompts also that every prompt file exists
    ivr-engine make-prompts [--force]              the demo prompts into ivr.prompts (espeak-ng)

The configuration is ctiserver's (one file for the node; the ``[ivr]`` section is this daemon's,
docs/configuration.md). At start the daemon waits up to 30 s (``IVR_CONNECT_WAIT`` seconds) for
the core. It speaks systemd's notify protocol (READY, WATCHDOG, STOPPING). Exit status: 0 ok,
1 failed at run time (the core unreachable, login refused), 2 bad configuration or flow.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from ctiserver.sdnotify import Notifier
from ctiserver.settings import ConfigError, Settings, load_settings
from simprot.errors import SimProtError

from .flow import FlowError, load_flow_file

log = logging.getLogger("ivr_engine")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ivr-engine", description="The IVR: call flows on SIP/RTP legs.")
    p.add_argument("--config", "-c", metavar="FILE", help="TOML configuration (docs/configuration.md, [ivr])")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting (repeatable)")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("run", help="run the daemon (the default)")
    cf = sub.add_parser("check-flow", help="validate a call-flow file")
    cf.add_argument("file")
    cf.add_argument("--prompts", metavar="DIR", help="also check the prompt files under DIR/<language>/")
    mp = sub.add_parser("make-prompts", help="generate the demo prompts with espeak-ng into ivr.prompts")
    mp.add_argument("--force", action="store_true", help="remake existing files")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-flow":
        return _check_flow(args.file, args.prompts)
    try:
        settings = load_settings(args.config, overrides=args.set)
    except ConfigError as exc:
        print(f"ivr-engine: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "make-prompts":
        from .demo_prompts import make_demo_prompts
        from .tts import Speaker, TtsError

        try:
            made = make_demo_prompts(settings.ivr.prompts, Speaker(settings.ivr.tts, settings.ivr.tts_cache),
                                     force=args.force, progress=lambda line: print(f"  {line}", file=sys.stderr))
        except TtsError as exc:
            print(f"ivr-engine: {exc}", file=sys.stderr)
            return 1
        print(f"{made} prompt files written to {settings.ivr.prompts}")
        return 0
    from ctiserver.logs import setup_logging

    setup_logging(settings.log.level, settings.log.format)
    import uvloop

    return uvloop.run(_serve(settings))


def _check_flow(path: str, prompts: str | None) -> int:
    try:
        flow = load_flow_file(path)
        if prompts is not None:
            from .engine import PromptSource
            from .tts import Speaker

            PromptSource(prompts, Speaker("", "/nonexistent")).check(flow)
    except FlowError as exc:
        print(f"ivr-engine: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: flow {flow.name!r}, {len(flow.steps)} steps, pilots {', '.join(flow.pilots) or '-'}: ok")
    return 0


async def _serve(settings: Settings) -> int:
    from .engine import IvrEngine

    engine = IvrEngine(settings.ivr, None)   # the password file is read at start
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        port = await engine.start(connect_wait=float(os.environ.get("IVR_CONNECT_WAIT", "30")))
    except (OSError, ConnectionError, SimProtError) as exc:   # the core unreachable, login refused, ...
        log.error("ivr.start_failed", extra={"reason": str(exc)})
        await engine.close()
        return 1
    print(f"ivr-engine: SIP on {settings.ivr.host}:{port} (udp+tcp), {len(engine.flows)} pilots, "
          f"prompts in {settings.ivr.prompts}", flush=True)
    notifier = Notifier()
    notifier.ready(f"SIP on {settings.ivr.host}:{port}, {len(engine.flows)} pilots")
    pet = notifier.pet_watchdog()
    await stop.wait()
    log.info("ivr.stopping")
    notifier.stopping()
    if pet is not None:
        pet.cancel()
    await engine.close()
    return 0
