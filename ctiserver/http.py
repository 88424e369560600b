"""HTTP for operations: health, Prometheus metrics, status.  Read-only; binds where configured."""

from __future__ import annotations

from aiohttp import web

from .service import CoreService


def make_app(service: CoreService) -> web.Application:
    async def health(request: web.Request) -> web.Response:
        ok = service.db_ok()
        body = {"status": "ok" if ok else "degraded", "database": "ok" if ok else "down",
                "role": "master" if service.master else "standby", "node": service.settings.node.name}
        return web.json_response(body, status=200 if ok else 503)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(service.status_view())

    async def metrics(request: web.Request) -> web.Response:
        s = service.status_view()
        lines = [
            "# HELP ctiserver_up 1 while the process serves.", "# TYPE ctiserver_up gauge", "ctiserver_up 1",
            "# HELP ctiserver_master 1 on the master node.", "# TYPE ctiserver_master gauge",
            f"ctiserver_master {1 if service.master else 0}",
            "# HELP ctiserver_database_up 1 while the database answers.", "# TYPE ctiserver_database_up gauge",
            f"ctiserver_database_up {1 if s['database'] == 'ok' else 0}",
            "# HELP ctiserver_simprot_connections Open SimProt connections.",
            "# TYPE ctiserver_simprot_connections gauge", f"ctiserver_simprot_connections {s['connections']}",
            "# HELP ctiserver_simprot_sessions Logged-in SimProt sessions.",
            "# TYPE ctiserver_simprot_sessions gauge", f"ctiserver_simprot_sessions {s['sessions']}",
            "# HELP ctiserver_topic_events_total Events published per topic since start.",
            "# TYPE ctiserver_topic_events_total counter",
        ]
        lines += [f'ctiserver_topic_events_total{{topic="{t}"}} {n}' for t, n in sorted(s["topics"].items())]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    return app
