"""Text-to-speech as a prompt source (IVR-4): espeak-ng, run once per (voice, text), cached as WAV.

``Speaker.wav(text, language)`` returns the path of a WAV file with the spoken text, making it
with ``<command> -v <voice> -s <speed> -w <tmp> -- <text>`` when it is not cached yet; the file is
written under a temporary name and renamed, so a crash never leaves half a file in the cache. The
cache key is a hash of the command, voice, speed and text, so the same announcement ("You are
number 3 in the queue") is synthesised once however many callers hear it. Concurrent requests for
the same text wait for one synthesis. A missing command or a failing synthesis raises
:class:`TtsError` naming the command and what it said.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

VOICES = {"en": "en", "cs": "cs"}
MAX_TEXT = 500          # characters per announcement
TIMEOUT = 20.0          # seconds per synthesis


class TtsError(Exception):
    pass


class Speaker:
    def __init__(self, command: str, cache: str | os.PathLike[str], *, speed: int = 150) -> None:
        self.command = command
        self.cache = Path(cache)
        self.speed = speed
        self._busy: dict[Path, asyncio.Future[Path]] = {}
        self.made = 0

    def available(self) -> bool:
        return bool(self.command) and shutil.which(self.command) is not None

    def path_for(self, text: str, language: str) -> Path:
        key = hashlib.sha256(f"{self.command}\0{VOICES.get(language, language)}\0{self.speed}\0{text}".encode())
        return self.cache / language / f"{key.hexdigest()[:32]}.wav"

    def _argv(self, text: str, language: str, out: Path) -> list[str]:
        if not self.command:
            raise TtsError("text-to-speech is not configured (ivr.tts)")
        exe = shutil.which(self.command)
        if exe is None:
            raise TtsError(f"{self.command}: not found (install espeak-ng, or set ivr.tts)")
        if not text.strip() or len(text) > MAX_TEXT:
            raise TtsError(f"text: 1..{MAX_TEXT} characters, got {len(text)}")
        return [exe, "-v", VOICES.get(language, language), "-s", str(self.speed), "-w", str(out), "--", text]

    def wav_sync(self, text: str, language: str) -> Path:
        """Synthesise now (for the prompt generator and tests; the daemon uses :meth:`wav`)."""
        path = self.path_for(text, language)
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            done = subprocess.run(self._argv(text, language, tmp), capture_output=True, timeout=TIMEOUT, check=False)
            if done.returncode != 0 or not tmp.exists() or tmp.stat().st_size <= 44:
                raise TtsError(f"{self.command}: exit {done.returncode}: "
                               f"{done.stderr.decode(errors='replace').strip()[:200] or 'no audio'}")
            tmp.replace(path)
        except subprocess.TimeoutExpired:
            raise TtsError(f"{self.command}: no answer in {TIMEOUT:.0f} s") from None
        finally:
            tmp.unlink(missing_ok=True)
        self.made += 1
        return path

    async def wav(self, text: str, language: str) -> Path:
        path = self.path_for(text, language)
        if path.exists():
            return path
        pending = self._busy.get(path)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._busy[path] = fut
        try:
            result = await self._make(text, language, path)
            fut.set_result(result)
            return result
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()   # retrieved: nobody else may be waiting
            raise
        finally:
            del self._busy[path]

    async def _make(self, text: str, language: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{id(path)}.tmp")
        argv = self._argv(text, language, tmp)
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            tmp.unlink(missing_ok=True)
            raise TtsError(f"{self.command}: no answer in {TIMEOUT:.0f} s") from None
        if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size <= 44:
            tmp.unlink(missing_ok=True)
            raise TtsError(f"{self.command}: exit {proc.returncode}: "
                           f"{err.decode(errors='replace').strip()[:200] or 'no audio'}")
        tmp.replace(path)
        self.made += 1
        return path
