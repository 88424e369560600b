"""A stand-in for the insurer's EHIC register (IVR-3) on loopback, for the demo and the tests.

The real service is ``PlatnostPrukazu`` behind a JSON wrapper; we cannot run it here, so this is a
real HTTP server (aiohttp) speaking the wrapper's protocol:
``GET <base>/Verify/<number>`` → ``{"Priznak": "1", "Platnost": "A"}``. The answer depends on the
card number's last digit, so every case can be reached by dialling:

=====  ===========================================  =====  ===========================================
last   answer                                       last   answer
=====  ===========================================  =====  ===========================================
0, 9   Priznak 1, Platnost A (valid, insured)       5      Priznak -1 (technical error)
1      Priznak 1, Platnost N (card not valid)       6      no answer for 30 s (the IVR's timeout)
2      Priznak 1, Platnost P (insurance unsuitable) 7      malformed JSON
3      Priznak 9, Platnost Y (several records)      8      HTTP 500
4      Priznak 0, Platnost X (no such card)         other  Priznak -2 (bad input: not 9-20 digits,
                                                           or starting with 000)
=====  ===========================================  =====  ===========================================

    python -m ivr_engine.ehic_mock [--host 127.0.0.1] [--port 8090]
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

BASE = "/vzp/api/RszpEHIC"
SEEN = web.AppKey("seen", list)   # the card numbers asked for, in order (the tests read it)
ANSWERS = {"0": ("1", "A"), "9": ("1", "A"), "1": ("1", "N"), "2": ("1", "P"), "3": ("9", "Y"), "4": ("0", "X"),
           "5": ("-1", "")}


async def verify(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    request.app[SEEN].append(number)
    if not (number.isdigit() and 9 <= len(number) <= 20) or number.startswith("000"):
        return web.json_response({"Priznak": "-2", "Platnost": ""})
    last = number[-1]
    if last == "6":
        await asyncio.sleep(30)
    if last == "7":
        return web.Response(text='{"Priznak": "1", "Platnost": ', content_type="application/json")
    if last == "8":
        return web.Response(status=500, text="internal error")
    priznak, platnost = ANSWERS.get(last, ("-2", ""))
    return web.json_response({"Priznak": priznak, "Platnost": platnost})


def make_app() -> web.Application:
    app = web.Application()
    app[SEEN] = []
    app.router.add_get(BASE + "/Verify/{number}", verify)
    return app


async def serve(host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(make_app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def main() -> None:
    p = argparse.ArgumentParser(description="A stand-in EHIC register on loopback (demo and tests).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    args = p.parse_args()

    async def run() -> None:
        runner, port = await serve(args.host, args.port)
        print(f"EHIC register stand-in on http://{args.host}:{port}{BASE}/Verify/<number>", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
