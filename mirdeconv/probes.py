"""Probe stimuli with ground truth: the invariance study of Choi et al. 2016, as audio.

The author's probe set (docs/method.md §3.1): 4-second clips, 4 keys (Bb2, Eb2, A3, G4) x 6
instruments (sine, piano, acoustic guitar, electric guitar, saxophone, strings) x 5 chord
sets, plus drums in 4 rhythms.  Here also isolated notes (one clip per instrument) and
onsets (clicks and noise bursts), so that every descriptor of :mod:`mirdeconv.analysis`
has a clip whose answer is known.

Families (``Probe.family``)

``chords``
    One clip per (key, instrument, chord set).  Chord sets (semitones above the key's
    root; segment lengths in seconds; labels in Harte syntax):

    ======================  =============================================  =========
    ``intervals``           minor 3rd, major 3rd, 4th, 5th                 4 x 1 s
    ``major_minor``         ``maj``, ``min``                               2 x 2 s
    ``sus4_maj7``           ``sus4``, ``maj7``                             2 x 2 s
    ``dom7_min7``           ``7``, ``min7``                                2 x 2 s
    ``diminished_blank``    ``dim``, then silence (``N``)                  2 x 2 s
    ======================  =============================================  =========

``drums``
    Kick, snare and hi-hat in 4 rhythms at 120 BPM (``rock``, ``four_on_the_floor``,
    ``breakbeat``, ``half_time``), 2 bars.
``notes``
    One clip per instrument: the 4 keys' roots as single notes, 1 s each.
``onsets``
    ``clicks`` (short decaying clicks) and ``bursts`` (50 ms noise bursts) at irregular times.

Instruments are synthesised deterministically in numpy (``renderer="synth"``), each with
its own spectral envelope and attack: sine (pure tone, soft attack); piano (additive,
stretched partials, hammer thump, two-stage decay); acoustic guitar (Karplus-Strong plucked
string with a tuned fractional delay, body resonances); electric guitar (a longer-sustaining
plucked string through a soft-clipping overdrive); saxophone (additive with a formant
envelope, breath noise, delayed vibrato); strings (bowed: three detuned sawtooth-like
voices, slow attack, vibrato, body formants).  ``renderer="soundfont"`` renders the same
notes with the General MIDI soundfont bundled with ``pretty_midi`` through fluidsynth
(docs/method.md §3.1; needs ``pip install pretty_midi pyfluidsynth`` and the system's
libfluidsynth); the sine stays synthesised, drums and onsets always are.

>>> from mirdeconv import probes
>>> clips = probes.probe_set(families=("drums",))
>>> [c.name for c in clips][:2]
['drums/rock', 'drums/four_on_the_floor']
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidOptionError, MirdeconvError

__all__ = [
    "KEYS", "INSTRUMENTS", "CHORD_SETS", "RHYTHMS", "FAMILIES", "DURATION",
    "Probe", "probe_set", "write_probes", "instrument_note",
]

#: The keys (chord roots) of the probe set, with their MIDI numbers.
KEYS: dict[str, int] = {"Bb2": 46, "Eb2": 39, "A3": 57, "G4": 67}
INSTRUMENTS = ("sine", "piano", "acoustic_guitar", "electric_guitar", "saxophone", "strings")
#: chord set -> segments of (Harte quality, semitones above the root); ``None`` = silence.
CHORD_SETS: dict[str, list[tuple[str, tuple[int, ...] | None]]] = {
    "intervals": [("(1,b3)", (0, 3)), ("(1,3)", (0, 4)), ("(1,4)", (0, 5)), ("(1,5)", (0, 7))],
    "major_minor": [("maj", (0, 4, 7)), ("min", (0, 3, 7))],
    "sus4_maj7": [("sus4", (0, 5, 7)), ("maj7", (0, 4, 7, 11))],
    "dom7_min7": [("7", (0, 4, 7, 10)), ("min7", (0, 3, 7, 10))],
    "diminished_blank": [("dim", (0, 3, 6)), ("N", None)],
}
RHYTHMS = ("rock", "four_on_the_floor", "breakbeat", "half_time")
FAMILIES = ("chords", "drums", "notes", "onsets")
#: Sample rate of the probe set unless asked for another, in Hz.
PROBE_SR = 22050
#: Length of every clip in seconds.
DURATION = 4.0
#: RMS of every clip's sounding part (-20 dBFS).
LEVEL = 0.1
#: General MIDI programs of the instruments for ``renderer="soundfont"``.
GM_PROGRAMS = {"piano": 0, "acoustic_guitar": 25, "electric_guitar": 29, "saxophone": 65,
               "strings": 48}
_PITCH_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
_RELEASE = 0.05   # seconds of silence at the end of every chord segment


@dataclass
class Probe:
    """One probe clip and its ground truth.

    Attributes
    ----------
    name : str
        ``family/...`` path-like name, e.g. ``chords/A3/piano/major_minor``.
    family : {"chords", "drums", "notes", "onsets"}
    audio : np.ndarray, float32, shape (n_samples,)
        Mono, RMS 0.1 (-20 dBFS) over its sounding part: every clip equally loud.
    sr : int
        Sample rate in Hz.
    key, instrument, chord_set, rhythm : str or None
        The factors of the clip (``key`` is the chord root with its octave, e.g. ``"Bb2"``).
    onsets : np.ndarray, float, shape (n_onsets,)
        Reference onset times in seconds (every note or drum hit that starts).
    notes : np.ndarray, float, shape (n_notes, 3)
        ``start_s, end_s, midi_pitch`` of every note played.
    chords : list of (float, float, str)
        ``start_s, end_s, Harte label`` of every segment (``N``: silence).
    hits : list of (float, str)
        ``time_s, drum`` of every drum hit (``kick``, ``snare``, ``hihat``).
    """

    name: str
    family: str
    audio: np.ndarray
    sr: int
    key: str | None = None
    instrument: str | None = None
    chord_set: str | None = None
    rhythm: str | None = None
    onsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    notes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    chords: list[tuple[float, float, str]] = field(default_factory=list)
    hits: list[tuple[float, str]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.audio) / self.sr

    def pitch_classes(self) -> np.ndarray:
        """Duration-weighted pitch-class profile of the notes played, shape (12,), C first;
        sums to 1 (all zeros when no notes)."""
        prof = np.zeros(12)
        for start, end, pitch in self.notes:
            prof[int(round(pitch)) % 12] += end - start
        return prof / prof.sum() if prof.sum() > 0 else prof

    def to_jams(self) -> Any:
        """The annotations as a JAMS document (namespaces onset, note_midi, chord,
        tag_open for instrument and drum hits, key_mode)."""
        import jams

        j = jams.JAMS()
        j.file_metadata.duration = self.duration
        j.file_metadata.title = self.name
        j.sandbox.update(family=self.family, key=self.key, instrument=self.instrument,
                         chord_set=self.chord_set, rhythm=self.rhythm, sr=self.sr)
        meta = {"annotation_tools": "mirdeconv.probes", "corpus": "mirdeconv probe set"}
        on = jams.Annotation(namespace="onset", duration=self.duration)
        for t in self.onsets:
            on.append(time=float(t), duration=0.0)
        anns = [on]
        if len(self.notes):
            nt = jams.Annotation(namespace="note_midi", duration=self.duration)
            for s, e, p in self.notes:
                nt.append(time=float(s), duration=float(e - s), value=float(p))
            anns.append(nt)
        if self.chords:
            ch = jams.Annotation(namespace="chord", duration=self.duration)
            for s, e, lab in self.chords:
                ch.append(time=float(s), duration=float(e - s), value=lab)
            anns.append(ch)
        if self.instrument or self.hits:
            tg = jams.Annotation(namespace="tag_open", duration=self.duration)
            if self.instrument:
                tg.append(time=0.0, duration=self.duration, value=f"instrument:{self.instrument}")
            for t, drum in self.hits:
                tg.append(time=float(t), duration=0.0, value=f"drum:{drum}")
            anns.append(tg)
        if self.key:
            km = jams.Annotation(namespace="key_mode", duration=self.duration)
            km.append(time=0.0, duration=self.duration, value=f"{self.key[:-1]}:major")
            anns.append(km)
        for a in anns:
            a.annotation_metadata.annotation_tools = meta["annotation_tools"]
            a.annotation_metadata.corpus = meta["corpus"]
            j.annotations.append(a)
        return j


# =====================================================================================
# instruments
# =====================================================================================
def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)


def _env(n: int, sr: int, attack: float, release: float = 0.03) -> np.ndarray:
    """Linear attack, flat sustain, linear release, shape (n,)."""
    e = np.ones(n)
    a = min(n, max(1, int(attack * sr)))
    r = min(n - a, max(1, int(release * sr)))
    e[:a] = np.linspace(0, 1, a, endpoint=False)
    if r > 0:
        e[n - r:] = np.linspace(1, 0, r)
    return e


def _resonators(x: np.ndarray, sr: int, peaks: Sequence[tuple[float, float, float]]) -> np.ndarray:
    """Add two-pole resonances ``(Hz, bandwidth Hz, gain)`` to ``x`` (an instrument body)."""
    import scipy.signal

    y = np.array(x, dtype=np.float64)
    for f, bw, g in peaks:
        if f >= sr / 2:
            continue
        r = np.exp(-np.pi * bw / sr)
        a = [1.0, -2 * r * np.cos(2 * np.pi * f / sr), r * r]
        y += g * (1 - r) * scipy.signal.lfilter([1.0, 0.0, -1.0], a, x)
    return y


def _additive(f0: float, n: int, sr: int, amps: np.ndarray, decays: np.ndarray | None = None,
              stretch: float = 0.0, vibrato: tuple[float, float, float] = (0.0, 0.0, 0.0),
              phase_rng: np.random.Generator | None = None) -> np.ndarray:
    """Sum of partials k = 1..len(amps) at ``f0 * k * sqrt(1 + stretch k^2)`` below Nyquist;
    ``decays`` in 1/s per partial; ``vibrato`` = (rate Hz, depth in cents, onset s)."""
    t = np.arange(n) / sr
    rate, cents, delay = vibrato
    if cents:
        depth = np.clip((t - delay) / 0.3, 0, 1) * cents
        ratio = 2.0 ** (depth * np.sin(2 * np.pi * rate * t) / 1200.0)
        phase0 = 2 * np.pi * np.cumsum(ratio) / sr
    else:
        phase0 = 2 * np.pi * t
    y = np.zeros(n)
    # harmonic partials by recurrence, z_k = z_1^k (a complex multiply instead of a sine)
    z1 = np.exp(1j * f0 * phase0) if stretch == 0 else None
    zk = np.ones(n, complex) if z1 is not None else None
    for k, a in enumerate(amps, start=1):
        fk = f0 * k * np.sqrt(1.0 + stretch * k * k)
        if zk is not None:
            zk *= z1
        if fk >= 0.45 * sr:
            break
        ph = 0.0 if phase_rng is None else phase_rng.uniform(0, 2 * np.pi)
        if a == 0:
            continue
        part = a * (np.sin(fk * phase0 + ph) if zk is None else (zk * np.exp(1j * ph)).imag)
        if decays is not None:
            part *= np.exp(-decays[k - 1] * t)
        y += part
    return y


def _plucked(f0: float, n: int, sr: int, rng: np.random.Generator, loss: float,
             brightness: float) -> np.ndarray:
    """Karplus-Strong string: noise burst in a delay line with a two-point average and a
    first-order allpass that tunes the fractional part of the period."""
    import scipy.signal

    period = sr / f0
    N = int(np.floor(period - 0.5 - 0.1))
    d = period - 0.5 - N                         # allpass delay in [0.1, 1.1)
    c = (1 - d) / (1 + d)
    exc = rng.uniform(-1, 1, N + 2)
    if brightness < 1:                           # a softer pluck: low-passed excitation
        exc = scipy.signal.lfilter([1 - brightness], [1, -brightness], exc)
    x = np.zeros(n)
    x[:exc.size] = exc[:n]
    # H(z) = (1 + c z^-1) / ((1 + c z^-1) - loss/2 (1 + z^-1)(c + z^-1) z^-N)
    den = np.zeros(N + 3)
    den[0], den[1] = 1.0, c
    den[N] -= loss / 2 * c
    den[N + 1] -= loss / 2 * (1 + c)
    den[N + 2] -= loss / 2
    return scipy.signal.lfilter([1.0, c], den, x)


def instrument_note(instrument: str, midi: float, seconds: float, sr: int,
                    seed: int = 0) -> np.ndarray:
    """One note of a synthesised instrument.

    Parameters
    ----------
    instrument : str
        One of :data:`INSTRUMENTS`.
    midi : float
        MIDI pitch (69 = A4 = 440 Hz).
    seconds : float
        Sounding length (the note is released at the end).
    sr : int
        Sample rate in Hz.
    seed : int
        Seed of the note's noise (excitations, breath): same seed, same samples.

    Returns
    -------
    np.ndarray, float64, shape (round(seconds * sr),)
        Peak about 1.
    """
    if instrument not in INSTRUMENTS:
        raise InvalidOptionError(f"unknown instrument {instrument!r}; choose from {', '.join(INSTRUMENTS)}")
    n = int(round(seconds * sr))
    rng = np.random.default_rng(seed)
    f0 = _hz(midi)
    t = np.arange(n) / sr
    k = np.arange(1, 41)
    if instrument == "sine":
        y = np.sin(2 * np.pi * f0 * t) * _env(n, sr, 0.02, 0.05)
    elif instrument == "piano":
        amps = k ** -1.1 * np.abs(np.sin(np.pi * k / 7.3)) + 1e-3   # hammer at 1/7 of the string
        decays = 0.6 + 0.25 * k + 4e-4 * f0 * k
        y = _additive(f0, n, sr, amps, decays, stretch=4e-4 * (f0 / 262) ** 0.5, phase_rng=rng)
        y = 0.75 * y + 0.25 * y * np.exp(-t * 6)               # two-stage decay
        m = min(n, int(0.012 * sr))
        thump = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.002 * sr))
        y[:thump.size] += 0.3 * np.max(np.abs(y)) * thump
        y *= _env(n, sr, 0.002, 0.08)
    elif instrument == "acoustic_guitar":
        y = _plucked(f0, n, sr, rng, loss=0.996, brightness=0.35)
        y = _resonators(y, sr, [(100.0, 30.0, 3.0), (205.0, 50.0, 2.0), (2500.0, 800.0, 0.5)])
        y *= _env(n, sr, 0.001, 0.05)
    elif instrument == "electric_guitar":
        y = _plucked(f0, n, sr, rng, loss=0.9993, brightness=0.8)
        y = _resonators(y, sr, [(1800.0, 1200.0, 1.5)])       # pickup resonance
        y = np.tanh(4.0 * y / (np.max(np.abs(y)) or 1.0))       # overdrive
        y *= _env(n, sr, 0.001, 0.05)
    elif instrument == "saxophone":
        fk = f0 * k
        formants = (np.exp(-((fk - 550) / 350) ** 2) + 0.7 * np.exp(-((fk - 1500) / 500) ** 2)
                    + 0.25 * np.exp(-((fk - 2800) / 700) ** 2))
        amps = (0.35 + formants) * k ** -0.6
        y = _additive(f0, n, sr, amps, vibrato=(5.0, 18.0, 0.4), phase_rng=rng)
        breath = _resonators(rng.standard_normal(n) * 0.02, sr, [(1500.0, 900.0, 1.0)])
        y = (y / (np.max(np.abs(y)) or 1.0) + breath) * _env(n, sr, 0.05, 0.06)
    else:  # strings
        y = np.zeros(n)
        for detune in (-7.0, 0.0, 6.0):
            y += _additive(f0 * 2 ** (detune / 1200), n, sr, k ** -1.0,
                           vibrato=(5.5, 12.0, 0.2), phase_rng=rng)
        y = _resonators(y, sr, [(280.0, 100.0, 1.5), (450.0, 150.0, 1.0), (2900.0, 900.0, 0.6)])
        y *= _env(n, sr, 0.18, 0.12)
    peak = np.max(np.abs(y))
    return y / peak if peak > 0 else y


def _render_soundfont(instrument: str, notes: np.ndarray, n: int, sr: int) -> np.ndarray:
    try:
        import pretty_midi
    except ImportError:
        raise MirdeconvError(
            "renderer='soundfont' needs pretty_midi and pyfluidsynth (pip install pretty_midi "
            "pyfluidsynth) and the system's fluidsynth library (apt-get install libfluidsynth3)"
        ) from None
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=GM_PROGRAMS[instrument])
    for s, e, p in notes:
        inst.notes.append(pretty_midi.Note(velocity=100, pitch=int(p), start=float(s), end=float(e)))
    pm.instruments.append(inst)
    try:
        y = pm.fluidsynth(fs=sr)
    except (ImportError, OSError, ValueError) as exc:
        raise MirdeconvError(f"fluidsynth could not render the soundfont: {exc}") from None
    out = np.zeros(n)
    out[:min(n, y.size)] = y[:n]
    return out


def _render_notes(instrument: str, notes: np.ndarray, n: int, sr: int, seed: int,
                  renderer: str) -> np.ndarray:
    if renderer == "soundfont" and instrument != "sine":
        return _render_soundfont(instrument, notes, n, sr)
    y = np.zeros(n)
    for i, (s, e, p) in enumerate(notes):
        i0 = int(round(s * sr))
        note = instrument_note(instrument, p, e - s, sr, seed=seed + 7919 * i)
        m = min(note.size, n - i0)
        y[i0:i0 + m] += note[:m] / np.sqrt(len(notes))
    if instrument == "electric_guitar" and renderer == "synth":
        y = np.tanh(1.5 * y) / np.tanh(1.5)      # the chord through the same amp
    return y


def _finish(y: np.ndarray) -> np.ndarray:
    """Equal loudness for every clip: RMS :data:`LEVEL` over the sounding 2048-sample blocks
    (so that instruments differ in timbre, not in level), lowered if a peak would pass 0.99."""
    n = len(y) // 2048 * 2048
    block = (y[:n].reshape(-1, 2048) ** 2).mean(axis=1)
    sounding = block > 1e-6 * block.max() if block.size and block.max() > 0 else block > 0
    if not sounding.any():
        return y.astype(np.float32)
    gain = LEVEL / np.sqrt(block[sounding].mean())
    gain = min(gain, 0.99 / np.max(np.abs(y)))
    return (gain * y).astype(np.float32)


# =====================================================================================
# clips
# =====================================================================================
def _chord_probe(key: str, instrument: str, chord_set: str, sr: int, renderer: str,
                 seed: int) -> Probe:
    segs = CHORD_SETS[chord_set]
    seg_len = DURATION / len(segs)
    root = KEYS[key]
    notes, chords, onsets = [], [], []
    for i, (quality, intervals) in enumerate(segs):
        s, e = i * seg_len, (i + 1) * seg_len
        name = _PITCH_NAMES[root % 12]
        chords.append((s, e, "N" if intervals is None else f"{name}:{quality}"))
        if intervals is None:
            continue
        onsets.append(s)
        notes += [(s, e - _RELEASE, root + iv) for iv in intervals]
    notes_a = np.array(notes, dtype=float).reshape(-1, 3)
    n = int(round(DURATION * sr))
    y = _render_notes(instrument, notes_a, n, sr, seed, renderer)
    return Probe(name=f"chords/{key}/{instrument}/{chord_set}", family="chords", audio=_finish(y),
                 sr=sr, key=key, instrument=instrument, chord_set=chord_set,
                 onsets=np.array(onsets), notes=notes_a, chords=chords)


def _note_probe(instrument: str, sr: int, renderer: str, seed: int) -> Probe:
    seg = DURATION / len(KEYS)
    notes = np.array([(i * seg, (i + 1) * seg - _RELEASE, p) for i, p in enumerate(KEYS.values())])
    n = int(round(DURATION * sr))
    y = _render_notes(instrument, notes, n, sr, seed, renderer)
    return Probe(name=f"notes/{instrument}", family="notes", audio=_finish(y), sr=sr,
                 instrument=instrument, onsets=notes[:, 0].copy(), notes=notes)


#: rhythm -> drum -> hit positions in sixteenth notes within one bar of 16
_PATTERNS: dict[str, dict[str, list[int]]] = {
    "rock": {"kick": [0, 8, 10], "snare": [4, 12], "hihat": list(range(0, 16, 2))},
    "four_on_the_floor": {"kick": [0, 4, 8, 12], "snare": [4, 12], "hihat": [2, 6, 10, 14]},
    "breakbeat": {"kick": [0, 5, 10], "snare": [4, 12, 15], "hihat": list(range(16))},
    "half_time": {"kick": [0, 11], "snare": [8], "hihat": [0, 4, 8, 12]},
}


def _drum(name: str, sr: int, rng: np.random.Generator) -> np.ndarray:
    import scipy.signal

    n = int(0.4 * sr)
    t = np.arange(n) / sr
    if name == "kick":
        f = 55 + 120 * np.exp(-t / 0.02)
        y = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.05)
        y[: int(0.002 * sr)] += rng.standard_normal(int(0.002 * sr)) * 0.3
        return y
    if name == "snare":
        hi = min(5000.0, 0.45 * sr)
        b, a = scipy.signal.butter(2, [1000.0, hi], btype="band", fs=sr)
        noise = scipy.signal.lfilter(b, a, rng.standard_normal(n)) * np.exp(-t / 0.06)
        tone = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.03)
        return 1.5 * noise + 0.6 * tone
    b, a = scipy.signal.butter(4, 3000.0, btype="high", fs=sr)   # audible to 8 kHz models too
    return 2.0 * scipy.signal.lfilter(b, a, rng.standard_normal(n)) * np.exp(-t / 0.02)


def _drum_probe(rhythm: str, sr: int, seed: int, tempo: float = 120.0) -> Probe:
    rng = np.random.default_rng(seed)
    n = int(round(DURATION * sr))
    y = np.zeros(n)
    six = 60.0 / tempo / 4
    gains = {"kick": 1.0, "snare": 0.7, "hihat": 0.25}
    hits = []
    for bar in range(int(DURATION / (16 * six))):
        for drum, steps in _PATTERNS[rhythm].items():
            for s in steps:
                t0 = (bar * 16 + s) * six
                sig = _drum(drum, sr, rng)
                i0 = int(round(t0 * sr))
                m = min(sig.size, n - i0)
                y[i0:i0 + m] += gains[drum] * sig[:m]
                hits.append((t0, drum))
    hits.sort()
    onsets = np.unique(np.round([t for t, _ in hits], 6))
    return Probe(name=f"drums/{rhythm}", family="drums", audio=_finish(y), sr=sr, rhythm=rhythm,
                 instrument="drums", onsets=onsets, hits=hits)


def _onset_probe(kind: str, sr: int, seed: int) -> Probe:
    rng = np.random.default_rng(seed)
    n = int(round(DURATION * sr))
    # irregular inter-onset intervals between 0.15 and 0.6 s
    times = np.cumsum(rng.uniform(0.15, 0.6, 20)) + 0.1
    times = times[times < DURATION - 0.2]
    y = np.zeros(n)
    for t0 in times:
        i0 = int(round(t0 * sr))
        if kind == "clicks":
            m = int(0.01 * sr)
            sig = np.sign(rng.standard_normal(m)) * np.exp(-np.arange(m) / (0.0015 * sr))
        else:
            m = int(0.05 * sr)
            sig = rng.standard_normal(m) * np.hanning(2 * m)[m:] * np.linspace(1, 0.8, m)
        y[i0:i0 + m] += sig[: n - i0]
    return Probe(name=f"onsets/{kind}", family="onsets", audio=_finish(y), sr=sr,
                 instrument=kind, onsets=times)


def probe_set(sr: int = PROBE_SR, *, families: Iterable[str] = FAMILIES,
              keys: Iterable[str] | None = None, instruments: Iterable[str] | None = None,
              chord_sets: Iterable[str] | None = None, rhythms: Iterable[str] | None = None,
              renderer: str = "synth", seed: int = 2016) -> list[Probe]:
    """The probe clips, deterministic for a given ``seed``.

    Parameters
    ----------
    sr : int
        Sample rate in Hz (models resample to their own).
    families : iterable of str
        Any of :data:`FAMILIES`.
    keys, instruments, chord_sets, rhythms : iterable of str, optional
        Subsets (default: all of :data:`KEYS`, :data:`INSTRUMENTS`, :data:`CHORD_SETS`,
        :data:`RHYTHMS`).
    renderer : {"synth", "soundfont"}
        Synthesised instruments, or the General MIDI soundfont through fluidsynth.
    seed : int
        Seed of every noise source.

    Returns
    -------
    list of Probe
        Chords (key-major order), then drums, notes, onsets: 120 + 4 + 6 + 2 = 132 clips
        of 4 s with everything.
    """
    families = list(families)
    for name, given, allowed in (("family", families, FAMILIES), ("key", keys, KEYS),
                                 ("instrument", instruments, INSTRUMENTS),
                                 ("chord set", chord_sets, CHORD_SETS), ("rhythm", rhythms, RHYTHMS)):
        for v in given or ():
            if v not in allowed:
                raise InvalidOptionError(f"unknown {name} {v!r}; choose from {', '.join(allowed)}")
    if renderer not in ("synth", "soundfont"):
        raise InvalidOptionError(f"renderer must be 'synth' or 'soundfont'; got {renderer!r}")
    if int(sr) < 8000:
        raise InvalidOptionError(f"sr must be at least 8000 Hz; got {sr}")
    sr = int(sr)
    keys = list(keys or KEYS)
    instruments = list(instruments or INSTRUMENTS)
    chord_sets = list(chord_sets or CHORD_SETS)
    out: list[Probe] = []
    if "chords" in families:
        for ki, key in enumerate(keys):
            for ii, inst in enumerate(instruments):
                for ci, cs in enumerate(chord_sets):
                    out.append(_chord_probe(key, inst, cs, sr, renderer,
                                            seed + 1000 * ki + 100 * ii + 10 * ci))
    if "drums" in families:
        out += [_drum_probe(r, sr, seed + 50000 + i) for i, r in enumerate(rhythms or RHYTHMS)]
    if "notes" in families:
        out += [_note_probe(inst, sr, renderer, seed + 60000 + i) for i, inst in enumerate(instruments)]
    if "onsets" in families:
        out += [_onset_probe(k, sr, seed + 70000 + i) for i, k in enumerate(("clicks", "bursts"))]
    return out


def write_probes(probes: Sequence[Probe], out: str | os.PathLike, *, annotations: str = "jams",
                 progress: bool = False) -> list[Path]:
    """Write every probe as ``NAME.wav`` with ``NAME.jams`` (or ``NAME.json``) beside it, and
    ``probes.csv`` listing them.

    Parameters
    ----------
    probes : sequence of Probe
    out : path
        Folder (created).
    annotations : {"jams", "json"}
        JAMS documents, or plain JSON with the same fields as :class:`Probe`.
    progress : bool
        Show a tqdm bar.

    Returns
    -------
    list of Path
        Every file written (audio, annotations, then the CSV).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .store import atomic_path, prepare_folder, save_json, write_audio

    if annotations not in ("jams", "json"):
        raise InvalidOptionError(f"annotations must be 'jams' or 'json'; got {annotations!r}")
    folder = prepare_folder(out)
    written: list[Path] = []
    rows = []
    for p in tqdm(probes, desc="probes", unit="clip", disable=not progress):
        wav = folder / f"{p.name}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        written.append(write_audio(wav, p.audio, p.sr))
        ann = wav.with_suffix(f".{annotations}")
        if annotations == "jams":
            with atomic_path(ann) as tmp, open(tmp, "w") as fh:
                p.to_jams().save(fh, strict=True, fmt="jams")
        else:
            save_json(ann, {"name": p.name, "family": p.family, "sr": p.sr, "key": p.key,
                            "instrument": p.instrument, "chord_set": p.chord_set,
                            "rhythm": p.rhythm, "onsets": p.onsets, "notes": p.notes,
                            "chords": p.chords, "hits": p.hits})
        written.append(ann)
        rows.append({"name": p.name, "family": p.family, "key": p.key, "instrument": p.instrument,
                     "chord_set": p.chord_set, "rhythm": p.rhythm, "n_onsets": len(p.onsets),
                     "audio": str(wav.relative_to(folder)), "annotations": str(ann.relative_to(folder))})
    csv = folder / "probes.csv"
    with atomic_path(csv) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    written.append(csv)
    return written
