"""The daemon and ctictl as an operator runs them: real processes, real signals, real output."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import drop_dsn, fresh_dsn

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*args: str, env: dict | None = None, input: str | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})}, input=input,
                          timeout=timeout, cwd=ROOT)


def test_check_config_prints_effective_settings_and_names_bad_keys(tmp_path: Path) -> None:
    ok = run(str(BIN / "ctiserver"), "check-config", "config/demo.toml")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["simprot"]["port"] == 7400
    bad = tmp_path / "bad.toml"
    bad.write_text("[simprot]\nprot = 7400\n")
    res = run(str(BIN / "ctiserver"), "check-config", str(bad))
    assert res.returncode == 2 and "simprot.prot" in res.stderr and "port" in res.stderr
    res = run(str(BIN / "ctiserver"), "--config", "config/demo.toml", "--set", "simprot.port=99999", "check-config")
    assert res.returncode == 2 and "simprot.port" in res.stderr


@pytest.fixture
async def daemon(pg_dsn: str, tmp_path: Path):
    dsn = await fresh_dsn(pg_dsn)
    proc = subprocess.Popen(
        [str(BIN / "ctiserver"), "--config", str(ROOT / "config/demo.toml"), "--set", "simprot.port=0",
         "--set", "http.port=0", "--set", "sip.port=0", "--set", f"database.dsn={dsn}", "--set", "log.format=json"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CTISERVER_BOOTSTRAP__ADMIN_PASSWORD": "demo-admin-pw"})
    banner = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        banner.append(line)
        if "Stop with Ctrl-C" in line:
            break
    text = "".join(banner)
    m = re.search(r"SimProt\s+([\d.]+):(\d+)", text)
    assert m, f"no banner: {text} {proc.stderr.read() if proc.poll() is not None else ''}"
    assert re.search(r"SIP\s+127\.0\.0\.1:\d+ \(UDP and TCP\); demo phones", text), text   # the demo's trunk
    yield proc, f"{m.group(1)}:{m.group(2)}", text, tmp_path
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    await drop_dsn(pg_dsn, dsn)


def ctl(server: str, *args: str, password: str = "demo-admin-pw", **env: str) -> subprocess.CompletedProcess:
    return run(str(BIN / "ctictl"), "--server", server, "--user", "admin", *args,
               env={"CTICTL_PASSWORD": password, **env})


async def test_daemon_bootstraps_admin_serves_ctictl_and_stops_cleanly(daemon) -> None:
    proc, server, banner, cwd = daemon
    assert "Admin    created 'admin'" in banner
    conf = cwd / "var" / "ctictl.toml"
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    status = run(str(BIN / "ctictl"), "--config", str(conf), "status")
    assert status.returncode == 0, status.stderr
    assert "role         master" in status.stdout and "database     ok" in status.stdout
    js = json.loads(ctl(server, "--json", "status").stdout)
    assert js["role"] == "master" and js["environment"] == "demo"
    add = ctl(server, "accounts", "add", "jana", "--kind", "agent", "--name", "Jana Nová",
              CTICTL_NEW_PASSWORD="jana-pass-1")
    assert add.returncode == 0 and "created jana" in add.stdout
    listed = ctl(server, "accounts", "list")
    assert re.search(r"jana\s+agent\s+\*\s+yes\s+agent:\*\s+Jana Nová", listed.stdout), listed.stdout
    projects = ctl(server, "projects")  # the demo's distribution data
    assert projects.returncode == 0 and all(p in projects.stdout for p in ("general", "payments", "ehic"))
    dup = ctl(server, "accounts", "add", "jana", CTICTL_NEW_PASSWORD="jana-pass-1")
    assert dup.returncode == 1 and "CONFLICT" in dup.stderr
    wrong = ctl(server, "status", password="nope-nope-nope")
    assert wrong.returncode == 1 and "LOGIN_FAILED" in wrong.stderr
    # watch sees a message sent from another ctictl
    watch = subprocess.Popen([str(BIN / "ctictl"), "--server", server, "--user", "admin", "--json", "watch",
                              "messages", "--count", "1", "--seconds", "20"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "CTICTL_PASSWORD": "demo-admin-pw"})
    time.sleep(1.0)
    assert ctl(server, "message", "Porada v 10:00").returncode == 0
    out, _ = watch.communicate(timeout=20)
    event = json.loads(out.strip().splitlines()[-1])
    assert event["event"] == "message" and event["data"]["text"] == "Porada v 10:00"
    # SIGTERM: graceful stop, exit 0, structured log lines
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    logs = [json.loads(line) for line in proc.stderr.read().splitlines() if line.startswith("{")]
    events = [rec["event"] for rec in logs]
    assert "ctiserver.ready" in events and "ctiserver.stopped" in events
    assert any(rec["event"] == "login.ok" and rec.get("conn") and rec.get("account") for rec in logs)


def test_ctictl_cannot_connect_exit_code() -> None:
    res = run(str(BIN / "ctictl"), "--server", "127.0.0.1:1", "--user", "x", "status", env={"CTICTL_PASSWORD": "x"})
    assert res.returncode == 3 and "cannot connect" in res.stderr


async def test_bootstrap_admin_on_a_fresh_database(pg_dsn: str) -> None:
    dsn = await fresh_dsn(pg_dsn)
    try:
        args = [str(BIN / "ctiserver"), "--set", f"database.dsn={dsn}", "bootstrap-admin", "boss", "--password-stdin"]
        res = run(*args, input="boss-pass-123\n")
        assert res.returncode == 0 and "created admin account 'boss'" in res.stdout, res.stderr
        again = run(*args, input="boss-pass-123\n")
        assert again.returncode == 2 and "username" in again.stderr
        short = run(str(BIN / "ctiserver"), "--set", f"database.dsn={dsn}", "bootstrap-admin", "boss2",
                    "--password-stdin", input="short\n")
        assert short.returncode == 2 and "password" in short.stderr
    finally:
        await drop_dsn(pg_dsn, dsn)


async def test_sd_notify_ready_watchdog_stopping(pg_dsn: str, tmp_path: Path) -> None:
    import socket

    dsn = await fresh_dsn(pg_dsn)
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    proc = subprocess.Popen(
        [str(BIN / "ctiserver"), "--set", "simprot.port=0", "--set", "http.port=0", "--set", f"database.dsn={dsn}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    try:
        got = [sock.recv(4096).decode() for _ in range(3)]
        assert got[0].startswith("READY=1") and "STATUS=serving SimProt" in got[0]
        assert got[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
        proc.send_signal(signal.SIGTERM)
        while (msg := sock.recv(4096).decode()) == "WATCHDOG=1":
            pass
        assert msg == "STOPPING=1"
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        await drop_dsn(pg_dsn, dsn)
