"""``ivr-engine`` as an operator runs it: a real process against a real core, with systemd's
notify protocol, a flow checked from the command line, and a clear error when the core is absent."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from ivr_engine.flow import load_flow_file
from tests.integration.conftest import Core

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IVR = str(BIN / "ivr-engine")


def test_check_flow_names_the_step_and_the_missing_prompt(tmp_path: Path) -> None:
    ok = subprocess.run([IVR, "check-flow", "flows/demo.toml"], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert ok.returncode == 0 and "flow 'demo'" in ok.stdout and "pilots 100" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "flows" / "demo.toml").read_text().replace('"9" = "menu"', '"9" = "menuu"'))
    res = subprocess.run([IVR, "check-flow", str(bad)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2 and "step 'menu'" in res.stderr and "menuu" in res.stderr
    res = subprocess.run([IVR, "check-flow", "flows/demo.toml", "--prompts", str(tmp_path)], capture_output=True,
                         text=True, cwd=ROOT, timeout=30)
    assert res.returncode == 2 and "prompt" in res.stderr and str(tmp_path / "en") in res.stderr


def test_a_missing_core_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ivr.secret").write_text("x\n")
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = subprocess.run([IVR, "--set", f"ivr.core=127.0.0.1:{port}", "--set", "ivr.port=0",
                          "--set", f"ivr.password_file={tmp_path / 'ivr.secret'}", "--set", "log.format=text"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "IVR_CONNECT_WAIT": "1"})
    assert res.returncode == 1 and "ivr.start_failed" in res.stderr and f"127.0.0.1:{port}" in res.stderr


async def test_the_daemon_loads_its_flows_from_the_core_and_speaks_sd_notify(core: Core, tmp_path: Path) -> None:
    assert core.app.service is not None and core.app.db is not None
    await core.app.service.accounts.create("ivr", "ivr-pass-1", kind="service")
    from ctiserver.ivr_config import IvrConfig

    await IvrConfig(core.app.db.pool).store(load_flow_file(ROOT / "flows" / "demo.toml").to_doc(), "test")
    (tmp_path / "ivr.secret").write_text("ivr-pass-1\n")
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    proc = await asyncio.create_subprocess_exec(
        IVR, "--set", f"ivr.core={core.address}", "--set", "ivr.port=0", "--set", "log.format=text",
        "--set", f"ivr.password_file={tmp_path / 'ivr.secret'}", "--set", f"ivr.prompts={tmp_path / 'none'}",
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    try:
        got = [(await asyncio.wait_for(loop.sock_recv(sock, 4096), 20)).decode() for _ in range(2)]
        assert got[0].startswith("READY=1") and "STATUS=SIP on 127.0.0.1:" in got[0] and got[1] == "WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        while (msg := (await asyncio.wait_for(loop.sock_recv(sock, 4096), 20)).decode()) == "WATCHDOG=1":
            pass
        assert msg == "STOPPING=1"
        out, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0, err
        # the flow was refused because its prompt files are missing, and the log says which file
        assert b"ivr.flow_refused" in err and str(tmp_path / "none" / "en").encode() in err, err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        sock.close()
