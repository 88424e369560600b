"""An IVR stack for end-to-end tests: the core (``sip_core``), ivr-engine in the same event loop
on free ports with the demo flow and the demo prompts, and the EHIC register stand-in, all on
127.0.0.1. Also :func:`locate`, which finds a prompt in a recording by cross-correlation."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from ctiserver.ivr_config import IvrConfig
from ctiserver.settings import IvrSettings
from ivr_engine import ehic_mock
from ivr_engine.engine import IvrEngine
from ivr_engine.flow import load_flow_file
from rtpmedia.prompts import load_prompt
from tests.e2e.conftest import SipCore, free_port

DEMO = Path(__file__).resolve().parents[2] / "flows" / "demo.toml"
IVR_PASSWORD = "ivr-pass-1"


@dataclass
class IvrStack:
    core: SipCore
    engine: IvrEngine
    prompts: Path
    register: object
    register_port: int
    switchboard: int = 0   # the port transfers go to

    def prompt(self, name: str, language: str = "en") -> np.ndarray:
        return load_prompt(self.prompts / language / f"{name}.wav")

    async def close(self) -> None:
        await self.engine.close()
        await self.register.cleanup()  # type: ignore[attr-defined]


async def start_ivr(core: SipCore, prompts: Path, tmp: Path, *, switchboard: int = 0) -> IvrStack:
    """The demo flow in the core's database, an ``ivr`` service account, pilot 100 routed to a new
    ivr-engine; agents and project ``general`` come from ``core.add_agents``. Transfers (menu 0)
    go to ``sip:<number>@127.0.0.1:<switchboard>``."""
    app = core.app
    assert app.service is not None and app.db is not None
    await IvrConfig(app.db.pool).store(load_flow_file(DEMO).to_doc(), "test")
    await app.service.accounts.create("ivr", IVR_PASSWORD, kind="service")
    register, register_port = await ehic_mock.serve("127.0.0.1", 0)
    sip_port = free_port()
    base = random.randrange(20000, 60000, 2)
    settings = IvrSettings(port=sip_port, rtp_port_min=base, rtp_port_max=base + 199, max_legs=100,
                           core=(f"127.0.0.1:{app.simprot_address[1]}",), user="ivr", prompts=str(prompts),
                           tts_cache=str(tmp / "tts"), config_refresh=60.0,
                           variables=("demo_project=general", "demo_always_open=1", "operator=800100200",
                                      f"ehic_base=http://127.0.0.1:{register_port}{ehic_mock.BASE}"))
    engine = IvrEngine(settings, IVR_PASSWORD)
    await engine.start(connect_wait=5.0)
    tel = core.telephony
    tel.settings = dataclasses.replace(tel.settings, ivr_uri=f"sip:{{pilot}}@127.0.0.1:{engine.sip_port}",
                                       ivr_pilots=("100",), ivr_routing="ivr",
                                       outbound_uri=f"sip:{{number}}@127.0.0.1:{switchboard or 9}")
    return IvrStack(core, engine, prompts, register, register_port, switchboard)


async def session_row(core: SipCore) -> dict:
    """The IVR's report of its one session (``cc.ivr_sessions``), once it has arrived."""
    for _ in range(100):
        row = await core.pool.fetchrow("SELECT * FROM cc.ivr_sessions")
        if row is not None:
            return dict(row)
        await asyncio.sleep(0.05)
    raise AssertionError("the IVR reported no session")


def read_recording(folder: Path, direction: str = "dec") -> np.ndarray:
    """What baresip's ``sndfile`` module wrote: the newest ``dump-*-<direction>.wav``, at 8 kHz."""
    files = sorted(folder.glob(f"dump-*-{direction}.wav"), key=lambda p: p.stat().st_mtime)
    assert files, f"no {direction} recording in {folder}: {[p.name for p in folder.iterdir()]}"
    data, rate = soundfile.read(str(files[-1]), dtype="float64", always_2d=True)
    assert rate == 8000, rate
    return data[:, 0]


def locate(prompt: np.ndarray, recording: np.ndarray) -> tuple[float, float]:
    """Where ``prompt`` (int16 at 8 kHz) is heard in ``recording`` (seconds from the start) and how
    well: the peak of the normalised cross-correlation (1.0 = identical up to gain)."""
    p = prompt.astype(np.float64)
    p -= p.mean()
    r = recording.astype(np.float64)
    n = len(p)
    if len(r) < n:
        return 0.0, 0.0
    size = 1 << int(np.ceil(np.log2(len(r) + n)))
    corr = np.fft.irfft(np.fft.rfft(r, size) * np.conj(np.fft.rfft(p, size)), size)[: len(r) - n + 1]
    # the recording's energy under each window of n samples
    c2 = np.concatenate(([0.0], np.cumsum(r * r)))
    c1 = np.concatenate(([0.0], np.cumsum(r)))
    energy = (c2[n:] - c2[:-n]) - (c1[n:] - c1[:-n]) ** 2 / n
    score = corr / (np.sqrt(np.maximum(energy, 1e-9)) * np.sqrt(float(np.dot(p, p))))
    best = int(np.argmax(score))
    return best / 8000.0, float(score[best])
