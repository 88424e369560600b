"""systemd notification (sd_notify) without a dependency: a datagram to $NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import socket


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        self.address = addr or None
        usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> None:
        if self.address is None:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(state.encode(), self.address)
            except OSError:
                pass  # systemd went away; nothing useful to do

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def pet_watchdog(self) -> asyncio.Task | None:
        """With WatchdogSec= set: a task that pets the watchdog from the running event loop (a hung
        loop then gets the process restarted); cancel it when stopping. None without a watchdog."""
        interval = self.watchdog_interval
        if not interval:
            return None

        async def pet() -> None:
            while True:
                self.watchdog()
                await asyncio.sleep(interval)

        return asyncio.get_running_loop().create_task(pet())
