"""The demo's prompts (ISSUE 5, demo): spoken once with espeak-ng, in English and Czech, into the
IVR repository folder as ``<folder>/<language>/<name>.wav`` (8 kHz mono 16-bit, what the IVR plays
without converting), plus ``music.wav``, a gentle synthesised tune for the waiting treatment.

``ivr-engine make-prompts`` runs this; existing files are kept unless their text changed (each
``<name>.txt`` beside it says what it says; ``--force`` remakes all). Each file is written under a
temporary name and renamed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from rtpmedia.prompts import RATE, load_prompt

from .tts import Speaker

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "welcome": "Welcome to the health insurance contact centre demo.",
        "menu": "For a consultant, press 1. To check your European health insurance card, press 2. "
                "For the switchboard, press 0. To hear this menu again, press 9.",
        "invalid": "Sorry, that is not a valid choice.",
        "closed": "Our contact centre is open Monday to Friday from 8 a.m. to 6 p.m. "
                  "Please write to info at example dot c z. Thank you for calling.",
        "please_wait": "All our consultants are busy. Please stay on the line.",
        "callback_offer": "If you would like us to call you back, press 1.",
        "callback_ok": "Thank you. We will call you back as soon as possible. Goodbye.",
        "ehic_enter": "Please enter the number of your card, followed by the hash key.",
        "ehic_A": "Your card is valid and you are insured.",
        "ehic_N": "Your card exists but it is not valid.",
        "ehic_P": "Your card is valid, but your insurance does not cover this.",
        "ehic_Y": "We found several records for this number. Please talk to a consultant.",
        "ehic_X": "We found no card with this number.",
        "ehic_error": "Sorry, we cannot check your card right now.",
        "after_ehic": "To talk to a consultant, press 1. To check another card, press 2.",
        "goodbye": "Thank you for calling. Goodbye.",
        "sorry": "Sorry, we cannot take your call right now. Please call again later.",
    },
    "cs": {
        "welcome": "Vítejte v ukázce kontaktního centra zdravotní pojišťovny.",
        "menu": "Pro spojení s operátorem stiskněte 1. Pro ověření evropského průkazu pojištěnce stiskněte 2. "
                "Pro spojení s ústřednou stiskněte 0. Pro opakování nabídky stiskněte 9.",
        "invalid": "Lituji, tato volba neexistuje.",
        "closed": "Kontaktní centrum je otevřeno v pracovní dny od osmi do osmnácti hodin. "
                  "Napište nám prosím na info zavináč example tečka c z. Děkujeme za zavolání.",
        "please_wait": "Všichni operátoři jsou obsazeni. Zůstaňte prosím na lince.",
        "callback_offer": "Pokud chcete, abychom vám zavolali zpět, stiskněte 1.",
        "callback_ok": "Děkujeme. Zavoláme vám co nejdříve. Na shledanou.",
        "ehic_enter": "Zadejte prosím číslo svého průkazu a potvrďte křížkem.",
        "ehic_A": "Váš průkaz je platný a jste pojištěni.",
        "ehic_N": "Váš průkaz existuje, ale není platný.",
        "ehic_P": "Váš průkaz je platný, ale pojištění pro tento účel nestačí.",
        "ehic_Y": "K tomuto číslu jsme našli více záznamů. Spojte se prosím s operátorem.",
        "ehic_X": "Průkaz s tímto číslem neexistuje.",
        "ehic_error": "Lituji, průkaz teď nelze ověřit.",
        "after_ehic": "Pro spojení s operátorem stiskněte 1. Pro ověření dalšího průkazu stiskněte 2.",
        "goodbye": "Děkujeme za zavolání. Na shledanou.",
        "sorry": "Lituji, váš hovor teď nemůžeme přijmout. Zavolejte prosím později.",
    },
}


def music(seconds: float = 8.0) -> np.ndarray:
    """A quiet arpeggio (C major, soft attack and decay per note), int16 at 8 kHz: loops cleanly."""
    notes = [261.63, 329.63, 392.00, 523.25, 392.00, 329.63]
    per = int(RATE * seconds / len(notes) / 2)
    t = np.arange(per) / RATE
    env = np.minimum(1.0, t / 0.02) * np.exp(-3.0 * t)
    tune = np.concatenate([env * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)) for f in notes * 2])
    return (tune / np.max(np.abs(tune)) * 6000).astype(np.int16)


def _write(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.wav")
    soundfile.write(str(tmp), samples, RATE, subtype="PCM_16")
    tmp.replace(path)


def make_demo_prompts(folder: str | os.PathLike[str], speaker: Speaker, *, force: bool = False,
                      progress: Callable[[str], None] = lambda line: None) -> int:
    """Write every demo prompt that is missing (all with ``force``); returns how many were written."""
    root = Path(folder)
    made = 0
    for language, texts in TEXTS.items():
        for name, text in texts.items():
            path = root / language / f"{name}.wav"
            said = path.with_suffix(".txt")   # what the file says: a changed text is spoken again
            if path.exists() and not force and said.exists() and said.read_text() == text:
                continue
            _write(path, load_prompt(speaker.wav_sync(text, language)))
            said.write_text(text)
            made += 1
            progress(f"{path} ({len(text)} characters)")
        path = root / language / "music.wav"
        if force or not path.exists():
            _write(path, music())
            made += 1
            progress(f"{path} (music)")
    return made
