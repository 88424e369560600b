"""Run the real softphone baresip (Debian ``baresip-core`` 1.0) in tests: a config folder, the
process, its log, and remote control over ``ctrl_tcp``.

No sound card here: the audio source is ``aufile`` playing a generated WAV (a 440 Hz tone, 8 kHz
mono S16LE, what ``aufile`` 1.0 insists on; as long as baresip lives, since baresip hangs up its
call when the file ends), the player ``aubridge`` with a device nobody bridges
(it takes the decoded audio and drops it). ``ctrl_tcp`` speaks netstrings of JSON: we send
``{"command": "dial", "params": "sip:...", "token": "t1"}``, it answers
``{"response": true, "ok": true, "data": "...", "token": "t1"}`` and reports events
``{"event": true, "type": "CALL_ESTABLISHED", ...}`` (only from when we are connected: events of
the first moments, like the first REGISTER, are in the log instead). The commands are the
``menu`` module's (``dial``, ``hangup``, ``accept``, ``quit``, ...).

Bounded: baresip runs with ``-t seconds`` (it quits by itself) and :meth:`Baresip.stop` ends it
(SIGTERM, then SIGKILL) — use ``async with`` so that happens whatever the test does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import wave
from pathlib import Path
from typing import Any

import numpy as np

from tests.e2e.conftest import free_port

BARESIP = shutil.which("baresip")
MODULES = Path("/usr/lib/baresip/modules")


def write_tone(path: Path, seconds: float = 5.0, freq: float = 440.0, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        t = np.arange(int(rate * seconds)) / rate
        w.writeframes((8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes())
    return path


def write_config(folder: Path, accounts: list[str], *, sip_port: int, ctrl_port: int, wav: Path,
                 record: Path | None = None) -> None:
    """``config`` and ``accounts`` for baresip 1.0 in ``folder`` (one account line each). With
    ``record``, the ``sndfile`` module writes what baresip hears (``dump-*-dec.wav``) and what it
    sends (``-enc.wav``) there."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config").write_text(f"""\
poll_method\t\tepoll
sip_listen\t\t127.0.0.1:{sip_port}
call_local_timeout\t20
call_max_calls\t\t4
audio_source\t\taufile,{wav}
audio_player\t\taubridge,nil
audio_alert\t\taubridge,nil
ausrc_srate\t\t8000
ausrc_channels\t\t1
statmode_default\toff
module_path\t\t{MODULES}
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\taubridge.so
module_tmp\t\taccount.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so
ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}
""" + (f"module\t\t\tsndfile.so\nsnd_path\t\t{record}\n" if record is not None else ""))
    (folder / "accounts").write_text("".join(line + "\n" for line in accounts))


class Baresip:
    """One baresip process. ``output`` is its stdout and stderr so far (with ``-s``, the SIP trace)."""

    def __init__(self, folder: Path, proc: asyncio.subprocess.Process, argv: list[str], sip_port: int,
                 ctrl_port: int) -> None:
        self.folder, self.proc, self.argv = folder, proc, argv
        self.sip_port, self.ctrl_port = sip_port, ctrl_port
        self._out = bytearray()
        self._reader = asyncio.create_task(self._read_output())
        self._ctrl: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._ctrl_task: asyncio.Task[None] | None = None
        self.events: list[dict[str, Any]] = []
        self._responses: dict[str, dict[str, Any]] = {}
        self._tokens = 0

    @classmethod
    async def start(cls, folder: Path, accounts: list[str], *, seconds: int = 20, trace: bool = True,
                    record: bool = False) -> Baresip:
        """Write the config into ``folder``, start baresip (quitting by itself after ``seconds``)
        and connect to its ``ctrl_tcp``."""
        if BARESIP is None:
            raise AssertionError("baresip is not installed: apt-get install baresip-core")
        sip_port, ctrl_port = free_port(), free_port()
        folder.mkdir(parents=True, exist_ok=True)
        if record:
            (folder / "rec").mkdir(exist_ok=True)
        write_config(folder, accounts, sip_port=sip_port, ctrl_port=ctrl_port,
                     wav=write_tone(folder / "tone.wav", seconds + 5.0), record=folder / "rec" if record else None)
        argv = [BARESIP, "-f", str(folder), "-t", str(seconds)] + (["-s"] if trace else [])
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        phone = cls(folder, proc, argv, sip_port, ctrl_port)
        try:
            await phone.wait_output(r"baresip is ready\.", 10)
            await phone._connect()
        except BaseException:
            await phone.stop()
            raise
        return phone

    # ---- output -----------------------------------------------------------------------------------
    async def _read_output(self) -> None:
        assert self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(65536):
            self._out += chunk

    @property
    def output(self) -> str:
        return self._out.decode(errors="replace")

    def tail(self, n: int = 6000) -> str:
        """The end of the output, for assertion messages."""
        return f"--- baresip {' '.join(self.argv[1:])} ---\n{self.output[-n:]}"

    async def wait_output(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = asyncio.get_running_loop().time() + timeout
        regex = re.compile(pattern)
        while True:
            m = regex.search(self.output)
            if m is not None:
                return m
            if self.proc.returncode is not None and self._reader.done():
                raise AssertionError(f"baresip ended (rc {self.proc.returncode}) without /{pattern}/\n{self.tail()}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no /{pattern}/ from baresip in {timeout} s\n{self.tail()}")
            await asyncio.sleep(0.05)

    # ---- ctrl_tcp -----------------------------------------------------------------------------------
    async def _connect(self) -> None:
        for _ in range(50):
            try:
                self._ctrl = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"cannot connect to baresip's ctrl_tcp on {self.ctrl_port}\n{self.tail()}")
        self._ctrl_task = asyncio.create_task(self._read_ctrl())

    async def _read_ctrl(self) -> None:
        assert self._ctrl is not None
        reader = self._ctrl[0]
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ValueError):
            while True:   # netstrings: <length>:<json>,
                size = int((await reader.readuntil(b":"))[:-1])
                msg = json.loads((await reader.readexactly(size + 1))[:-1])
                if msg.get("event"):
                    self.events.append(msg)
                elif msg.get("response"):
                    self._responses[str(msg.get("token"))] = msg

    async def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Run a command (the menu module's) and return baresip's answer; it must be ok."""
        assert self._ctrl is not None
        self._tokens += 1
        token = f"t{self._tokens}"
        data = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._ctrl[1].write(str(len(data)).encode() + b":" + data + b",")
        await self._ctrl[1].drain()
        deadline = asyncio.get_running_loop().time() + timeout
        while token not in self._responses:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"baresip did not answer {command!r} in {timeout} s\n{self.tail()}")
            await asyncio.sleep(0.02)
        answer = self._responses.pop(token)
        assert answer.get("ok"), (answer, self.tail())
        return answer

    async def wait_event(self, kind: str, timeout: float) -> dict[str, Any]:
        """The first event of type ``kind`` (e.g. CALL_ESTABLISHED, CALL_CLOSED) seen so far or next."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for ev in self.events:
                if ev.get("type") == kind:
                    return ev
            if asyncio.get_running_loop().time() > deadline:
                seen = [e.get("type") for e in self.events]
                raise AssertionError(f"no {kind} event from baresip in {timeout} s (saw {seen})\n{self.tail()}")
            await asyncio.sleep(0.05)

    # ---- life ---------------------------------------------------------------------------------------
    async def stop(self, grace: float = 3.0) -> int:
        """End baresip: SIGTERM (it hangs up and unregisters), SIGKILL after ``grace`` seconds."""
        if self._ctrl is not None:
            self._ctrl[1].close()
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reader, 2.0)
        for task in (self._reader, self._ctrl_task):
            if task is not None and not task.done():
                task.cancel()
        assert self.proc.returncode is not None
        return self.proc.returncode

    async def __aenter__(self) -> Baresip:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
