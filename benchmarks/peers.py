"""mirdeconv against its peers: the same net, input and 64 channels, each in its own process.

What is timed
-------------
The Choi-style net of ``engine_vs_reference.py`` (input 96 x 256 x 1, 3x3 'same' conv + ReLU +
2x2 max-pool blocks, fixed seed, one fixed input), all 64 channels of layer 3 (the output of
``pool3``), target = the strongest unit of each channel (``max``), for two methods:

* ``deconvnet``: the backward signal is rectified at every ReLU, ``relu(g)``;
* ``guided`` (guided backprop): ``relu(g) * (x > 0)``.

The parent process builds the net once and saves its weights and the input to a temporary
``.npz`` (plain arrays, never a pickle).  Each implementation then runs in its own subprocess,
one after the other (``python benchmarks/peers.py --worker NAME --data IN.npz --out OUT.npz``):
it loads the arrays, builds its own copy of the net in its own framework (truncated at
``pool3``: every implementation computes layer 3 and nothing above it), and times the median of
5 runs of computing all 64 channels' maps after one warm-up run (``timing.median_ms``;
the PyTorch process uses a copy of it so that TensorFlow is not imported beside PyTorch).  It
writes the maps, shape (64, 96, 256), and its times to another ``.npz``.  The implementations:

1. mirdeconv's engine, ``deconvolve(..., features="all", target="max")``: the reference for the
   agreement check and the ratio;
2. the plain TensorFlow tiled reference of ``engine_vs_reference.reference_fn`` (deconvnet only:
   input tiled 64x, custom-gradient ReLU, one GradientTape in a ``tf.function``);
3. tf-keras-vis: ``Saliency`` with its ``GuidedBackpropagation`` model modifier, and a deconvnet
   modifier written here in the same style (every ReLU activation replaced by a custom-gradient
   ReLU); the input tiled 64x, score of item ``i`` = the maximum of channel ``i``;
4. Xplique: ``DeconvNet`` and ``GuidedBackprop`` on a head model whose 64 outputs are the
   channel maxima of ``pool3`` (global max pooling), the input tiled 64x, one-hot targets;
5. Captum on PyTorch (CPU): ``NeuronDeconvolution`` and ``NeuronGuidedBackprop`` on the same
   weights in a ``torch.nn.Sequential``, the neuron selector picking each item's channel's
   strongest unit; timed with chunks of 1, 8 and 64 input copies per call, the fastest reported;
6. an eager GradientTape loop over the channels one at a time (the typical notebook),
   deconvnet only.

Each peer finds the strongest unit itself, inside the timed work, as mirdeconv does.
tf-keras-vis 0.8.7 and Xplique 2.0.2 both run on Keras 3 here (models built with ``tf.keras``,
which is Keras 3 under TensorFlow 2.21; no ``TF_USE_LEGACY_KERAS``): tf-keras is installed only
because TensorFlow Probability, which ``import xplique`` loads, imports it.  The PyTorch process
runs with PyTorch's default thread count (one per core); its OpenMP threads suffer more than
TensorFlow's pool when another process shares the cores, so the load average is printed before
and after the run: compare numbers taken on an idle machine.

Agreement
---------
A peer's map is a neuron attribution seeded with 1 at the channel's strongest unit; mirdeconv's
is seeded with that unit's activation, so the two differ by one factor per channel.  Each peer's
channel ``a`` is scaled to mirdeconv's ``b`` by least squares (``s = <a, b> / <a, a>``) and the
peer agrees when ``max |s a - b| / max |b| <= 1e-4`` for every channel whose map is not all zero in
mirdeconv.  A channel that never fires on the input has an all-zero map in mirdeconv (scaled by
its activation, 0) and is left out of the comparison; the header says how many were compared.
Only an agreeing peer's time is ranked; one that disagrees is reported with its error and no
ratio.

A real PyTorch model
--------------------
Then Won et al. 2020's MTAT FCN (the ``won2020`` plugin's checkpoint, ``../shared/models/won2020``
or ``MIRDECONV_WON2020_DIR``) on 29 s of Muldjord's "Chaos God" (Debian's
fretsonfire-songs-muldjord; a synthetic track when it is absent): all 128 features of its
``layer3`` (the block's output, after its max-pool), target = each feature's strongest unit,
for both methods.  mirdeconv opens the PyTorch module itself (exported to ONNX, converted to
TensorFlow; opening it is not timed); Captum runs ``NeuronDeconvolution`` /
``NeuronGuidedBackprop`` on the native module, cut after ``layer3`` (as the engine computes
nothing above the layer), chunks of 1, 8 and 64 copies tried.  Agreement as above, per feature.

The last line
-------------
``peers: mirdeconv N.NNx ahead of the fastest peer (NAME); Won et al.'s FCN (PyTorch): M.MMx
ahead of Captum (METHOD)``, where ``N.NN`` is the smallest ratio ``peer ms / mirdeconv ms`` over
every agreeing peer and both methods, each peer compared with mirdeconv on the same method: the
fastest peer relative to mirdeconv, whichever method that is on; ``M.MM`` the same for Captum on
the real model.  Below 1 means mirdeconv is behind that peer.

Installing the peers
--------------------
::

    .venv/bin/pip install -e ".[peers]"
    .venv/bin/pip install --no-deps xplique==2.0.2

The ``peers`` extra brings torch (CPU wheel 2.13), captum, tf-keras-vis and Xplique's
dependencies; Xplique itself is installed without dependencies because it pins
``tensorflow<=2.20`` (it runs on 2.21).  Neither changes the installed TensorFlow or Keras.
A peer that is not installed is skipped with the reason printed.

Run
---
::

    .venv/bin/python benchmarks/peers.py                      # every implementation
    .venv/bin/python benchmarks/peers.py --only mirdeconv,captum
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from timing import median_ms  # a script beside this one

HERE = Path(__file__).resolve().parent
METHODS = ("deconvnet", "guided")
TOLERANCE = 1e-4
CAPTUM_CHUNKS = (1, 8, 64)
WORKER_TIMEOUT_S = 1800

Maps = dict[str, tuple[np.ndarray, float, str]]   # method -> (maps (c, bands, frames), ms, note)


@dataclass(frozen=True)
class Peer:
    """One implementation: its worker, what it needs, the methods it offers."""

    name: str
    label: str
    modules: tuple[str, ...]
    methods: tuple[str, ...] = METHODS


PEERS = (
    Peer("mirdeconv", "mirdeconv engine", ("mirdeconv",)),
    Peer("tf-reference", "TF tiled reference (engine_vs_reference)", ("tensorflow",), ("deconvnet",)),
    Peer("tf-keras-vis", "tf-keras-vis Saliency, batched", ("tf_keras_vis",)),
    Peer("xplique", "Xplique DeconvNet / GuidedBackprop, batched", ("xplique",)),
    Peer("captum", "Captum Neuron* (PyTorch CPU)", ("torch", "captum")),
    Peer("eager-loop", "eager GradientTape loop, one channel at a time", ("tensorflow",), ("deconvnet",)),
)
INSTALL_HINT = {
    "torch": 'pip install -e ".[peers]"', "captum": 'pip install -e ".[peers]"',
    "tf_keras_vis": 'pip install -e ".[peers]"', "xplique": "pip install --no-deps xplique==2.0.2",
}


# -- the workers ---------------------------------------------------------------------------------

def _harness() -> Any:
    """``engine_vs_reference``, the script beside this one (imports TensorFlow, Essentia first)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import engine_vs_reference

    return engine_vs_reference


def _data(path: str) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    if "n_weights" in d:                        # the Choi-style net (the FCN's data: frames, folder)
        d["weights"] = [d[f"w{i}"] for i in range(int(d["n_weights"]))]
        d["channels"] = tuple(int(c) for c in d["channels"])
        d["layer"] = int(d["layer"])
    return d


def _keras_net(keras: Any, d: dict[str, Any], activation: Any = "relu", head: bool = False) -> Any:
    """The net up to ``pool{layer}`` in the given Keras (3, or tf-keras), with the saved weights.

    ``head`` adds a global max pooling: the model's outputs are then the channel maxima."""
    x = inp = keras.Input(d["x"].shape[1:])
    for i, c in enumerate(d["channels"][: d["layer"]]):
        x = keras.layers.Conv2D(c, 3, padding="same", activation=activation, name=f"conv{i + 1}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    if head:
        x = keras.layers.GlobalMaxPooling2D(name="channel_max")(x)
    model = keras.Model(inp, x)
    for i in range(d["layer"]):
        model.get_layer(f"conv{i + 1}").set_weights(d["weights"][2 * i: 2 * i + 2])
    return model


def _own_channel_max(tf: Any, out: Any) -> Any:
    """Item ``i``'s channel ``i`` maximum, for a batch of ``c`` items of a ``c``-channel map."""
    own = tf.linalg.diag_part(tf.transpose(out, [1, 2, 0, 3]))   # (h, w, c)
    return tf.reduce_max(own, axis=[0, 1])


def _tf_relu(tf: Any, method: str) -> Callable[[Any], Any]:
    """A ReLU whose gradient follows the method's rule (as tests/test_engine_rules.py)."""

    @tf.custom_gradient
    def relu(x: Any) -> Any:
        def grad(dy: Any) -> Any:
            g = tf.nn.relu(dy)
            return g if method == "deconvnet" else g * tf.cast(x > 0, dy.dtype)

        return tf.nn.relu(x), grad

    return relu


def worker_mirdeconv(d: dict[str, Any]) -> Maps:
    """mirdeconv: ``from_keras`` + ``deconvolve(features="all", target="max")`` per method."""
    ev = _harness()
    from mirdeconv.adapters.keras import from_keras
    from mirdeconv.engine import deconvolve
    from mirdeconv.representations import MelSpectrogram, TrackInput

    model = ev.build()
    model.set_weights(d["weights"])
    rep = MelSpectrogram(sr=16000, n_fft=512, hop_length=256, n_mels=ev.BANDS, compression="log10")
    fm = from_keras(model, rep)
    X = fm.from_input(d["x"])[0]                                      # (frames, bands)
    assert np.array_equal(fm.to_input(X[None]), d["x"])
    track = TrackInput(frames=X, stft=np.zeros((257, ev.FRAMES), np.complex64),
                       audio=np.zeros(ev.FRAMES * 256, np.float32), sr=16000, representation=rep)
    out: Maps = {}
    for method in METHODS:
        def run(m: str = method) -> Any:
            return deconvolve(fm, track=track, layer=f"pool{ev.LAYER}", features="all",
                              method=m, target="max")

        masks = run().masks                                           # (c, frames, bands)
        out[method] = (fm.to_input(masks)[..., 0], median_ms(run), "")
    return out


def worker_tf_reference(d: dict[str, Any]) -> Maps:
    """``engine_vs_reference.reference_fn(model, "max")`` (deconvnet)."""
    ev = _harness()
    tf = ev.tf
    model = ev.build()
    model.set_weights(d["weights"])
    ref = ev.reference_fn(model, "max")
    x = tf.constant(d["x"])

    def run() -> np.ndarray:
        return ref(x).numpy()

    return {"deconvnet": (run()[..., 0], median_ms(run), "tf.function, input tiled 64x")}


def worker_tf_keras_vis(d: dict[str, Any]) -> Maps:
    """tf-keras-vis ``Saliency`` with a deconvnet / ``GuidedBackpropagation`` model modifier."""
    _harness()                       # TensorFlow, Essentia first
    import tensorflow as tf
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.model_modifiers import GuidedBackpropagation, ModelModifier

    class DeconvNet(ModelModifier):
        """Every ReLU activation gets the deconvnet gradient (``GuidedBackpropagation``'s style)."""

        def __call__(self, model: Any) -> None:
            for layer in model.layers:
                if getattr(layer, "activation", None) is tf.keras.activations.relu:
                    layer.activation = _tf_relu(tf, "deconvnet")

    model = _keras_net(tf.keras, d)
    c = d["channels"][d["layer"] - 1]
    xt = np.repeat(d["x"], c, axis=0)
    out: Maps = {}
    for method, modifier in (("deconvnet", DeconvNet()), ("guided", GuidedBackpropagation())):
        saliency = Saliency(model, model_modifier=modifier, clone=True)

        def run(s: Any = saliency) -> np.ndarray:
            return s(lambda o: _own_channel_max(tf, o), xt, gradient_modifier=None,
                     keepdims=True, normalize_map=False)

        out[method] = (run()[..., 0], median_ms(run), f"eager, input tiled {c}x")
    return out


def worker_xplique(d: dict[str, Any]) -> Maps:
    """Xplique ``DeconvNet`` / ``GuidedBackprop`` on the channel-maxima head, one-hot targets."""
    _harness()                       # TensorFlow, Essentia first
    import tensorflow as tf
    from xplique.attributions import DeconvNet, GuidedBackprop

    head = _keras_net(tf.keras, d, head=True)
    c = d["channels"][d["layer"] - 1]
    xt = np.repeat(d["x"], c, axis=0)
    targets = np.eye(c, dtype=np.float32)
    out: Maps = {}
    for method, cls in (("deconvnet", DeconvNet), ("guided", GuidedBackprop)):
        explainer = cls(head, batch_size=c, reducer=None)

        def run(e: Any = explainer) -> np.ndarray:
            return np.asarray(e.explain(xt, targets))

        out[method] = (run()[..., 0], median_ms(run), f"one batch of {c}, one-hot targets")
    return out


def worker_captum(d: dict[str, Any]) -> Maps:
    """Captum ``NeuronDeconvolution`` / ``NeuronGuidedBackprop``, at its fastest chunking."""
    import torch
    from captum.attr import NeuronDeconvolution, NeuronGuidedBackprop

    mods: list[torch.nn.Module] = []
    cin = d["x"].shape[-1]
    for i, c in enumerate(d["channels"][: d["layer"]]):
        kernel, bias = d["weights"][2 * i: 2 * i + 2]
        conv = torch.nn.Conv2d(cin, c, 3, padding=1)                    # 'same' for 3x3
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))  # (kh,kw,in,out)
            conv.bias.copy_(torch.from_numpy(bias))
        mods += [conv, torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        cin = c
    net = torch.nn.Sequential(*mods).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(d["x"].transpose(0, 3, 1, 2).copy())           # NHWC -> NCHW
    n = d["channels"][d["layer"] - 1]

    def maps(attr: Any, chunk: int) -> np.ndarray:
        parts = []
        for start in range(0, n, chunk):
            own = torch.arange(start, start + chunk)
            rows = torch.arange(chunk)

            def selector(out: torch.Tensor, own: torch.Tensor = own, rows: torch.Tensor = rows) -> Any:
                return out[rows, own].amax(dim=(1, 2))                   # item i: channel's max

            parts.append(attr.attribute(x.expand(chunk, -1, -1, -1).clone(), neuron_selector=selector))
        return torch.cat(parts)[:, 0].numpy()

    out: Maps = {}
    for method, cls in (("deconvnet", NeuronDeconvolution), ("guided", NeuronGuidedBackprop)):
        attr = cls(net, net[-1])
        timed = {k: median_ms(lambda a=attr, k=k: maps(a, k)) for k in CAPTUM_CHUNKS if n % k == 0}
        best = min(timed, key=timed.__getitem__)
        tried = ", ".join(f"{k}: {ms:.0f} ms" for k, ms in timed.items())
        out[method] = (maps(attr, best), timed[best],
                       f"chunks of {best} (tried {tried}); {torch.get_num_threads()} threads")
    return out


def worker_eager_loop(d: dict[str, Any]) -> Maps:
    """The notebook way: eager GradientTape, one channel at a time (deconvnet)."""
    ev = _harness()
    tf = ev.tf
    model = _keras_net(ev.keras, d, activation=_tf_relu(tf, "deconvnet"))
    x = tf.constant(d["x"])
    n = d["channels"][d["layer"] - 1]

    def run() -> np.ndarray:
        grads = []
        for ch in range(n):
            with tf.GradientTape() as tape:
                tape.watch(x)
                score = tf.reduce_max(model(x)[..., ch])
            grads.append(tape.gradient(score, x)[0, :, :, 0].numpy())
        return np.stack(grads)

    return {"deconvnet": (run(), median_ms(run), "eager, one forward + backward per channel")}


# -- a real PyTorch model: Won et al.'s FCN --------------------------------------------------------
FCN_LAYER, FCN_FRAMES = "layer3", 1813
SONG = Path("/usr/share/games/fretsonfire/data/songs/muldjord/chaos_god/song.ogg")


def _won_folder() -> Path | None:
    """The won2020 checkpoints: ``MIRDECONV_WON2020_DIR`` or ``../shared/models/won2020``."""
    for where in (os.environ.get("MIRDECONV_WON2020_DIR"), HERE.parents[1] / "shared" / "models" / "won2020"):
        if where and (Path(where) / "mtat_fcn.pth").is_file():
            return Path(where)
    return None


def fcn_frames() -> tuple[np.ndarray, str]:
    """The FCN's input: 29 s of a real song through its front end, (1813 frames, 96 bands)."""
    from mirdeconv.representations import won2020

    rep = won2020()
    if SONG.is_file():
        from mirdeconv.audio import load

        y, _ = load(SONG, sr=rep.sr)
        what = "29 s of Muldjord's Chaos God from 30 s"
        y = y[30 * rep.sr:30 * rep.sr + 464_000]
    else:
        from mirdeconv.demo import demo_track

        y, what = demo_track(sr=rep.sr, seconds=29.0, kind="mix"), "the synthetic demo mix"
    return rep.prepare(y, rep.sr).frames[:FCN_FRAMES].astype(np.float32), what


def worker_mirdeconv_fcn(d: dict[str, Any]) -> Maps:
    """mirdeconv on the won2020 plugin's FCN (exported, converted): ``deconvolve(layer3.mp,
    features="all", target="max")``; maps as (features, bands, frames)."""
    import mirdeconv
    from mirdeconv.representations import TrackInput

    model = mirdeconv.load_model("won2020:mtat-fcn", folder=str(d["folder"]))
    X = d["frames"]
    track = TrackInput(frames=X, stft=np.zeros((257, len(X)), np.complex64),
                       audio=np.zeros(len(X) * 256, np.float32), sr=16000,
                       representation=model.representation)
    out: Maps = {}
    for method in METHODS:
        def run(m: str = method) -> Any:
            return mirdeconv.deconvolve(model, track=track, layer=f"{FCN_LAYER}.mp", features="all",
                                        method=m, target="max")

        out[method] = (np.swapaxes(run().masks, 1, 2), median_ms(run), "opened from the torch.nn.Module")
    return out


def worker_captum_fcn(d: dict[str, Any]) -> Maps:
    """Captum on the native FCN cut after ``layer3``, at its fastest chunking."""
    import mirdeconv_plugins.won2020 as won
    import torch
    from captum.attr import NeuronDeconvolution, NeuronGuidedBackprop

    full = won.build("mtat-fcn", str(d["folder"]))
    net = torch.nn.Sequential(full.spec_bn, full.layer1, full.layer2, full.layer3).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.ascontiguousarray(d["frames"].T[None, None]))
    n = full.layer3.conv.out_channels

    def maps(attr: Any, chunk: int) -> np.ndarray:
        parts = []
        for start in range(0, n, chunk):
            own, rows = torch.arange(start, start + chunk), torch.arange(chunk)

            def selector(out: torch.Tensor, own: torch.Tensor = own, rows: torch.Tensor = rows) -> Any:
                return out[rows, own].amax(dim=(1, 2))

            parts.append(attr.attribute(x.expand(chunk, -1, -1, -1).clone(), neuron_selector=selector))
        return torch.cat(parts)[:, 0].numpy()

    out: Maps = {}
    for method, cls in (("deconvnet", NeuronDeconvolution), ("guided", NeuronGuidedBackprop)):
        attr = cls(net, net[-1])
        timed = {k: median_ms(lambda a=attr, k=k: maps(a, k), repeats=3) for k in CAPTUM_CHUNKS}
        best = min(timed, key=timed.__getitem__)
        tried = ", ".join(f"{k}: {ms:.0f} ms" for k, ms in timed.items())
        out[method] = (maps(attr, best), timed[best],
                       f"chunks of {best} (tried {tried}); {torch.get_num_threads()} threads")
    return out


WORKERS: dict[str, Callable[[dict[str, Any]], Maps]] = {
    "mirdeconv": worker_mirdeconv, "tf-reference": worker_tf_reference,
    "tf-keras-vis": worker_tf_keras_vis, "xplique": worker_xplique,
    "captum": worker_captum, "eager-loop": worker_eager_loop,
    "mirdeconv-fcn": worker_mirdeconv_fcn, "captum-fcn": worker_captum_fcn,
}
FCN_PEERS = (
    Peer("mirdeconv-fcn", "mirdeconv engine, from the torch.nn.Module", ("mirdeconv", "torch", "onnx2tf")),
    Peer("captum-fcn", "Captum Neuron* on the native module (PyTorch CPU)", ("torch", "captum")),
)


def run_worker(name: str, data: str, out: str) -> None:
    """Compute and time one implementation, in this process.

    Parameters
    ----------
    name : str
        A key of :data:`WORKERS`.
    data : str
        The parent's ``.npz``: the input ``x`` (1, bands, frames, 1), the weights ``w0 ...``,
        ``n_weights``, ``channels`` and ``layer``.
    out : str
        Where to write, per method, ``maps_<method>`` (channels, bands, frames), ``ms_<method>``
        (median ms for all channels) and ``note_<method>`` (plain arrays, no pickle).
    """
    result = WORKERS[name](_data(data))
    arrays: dict[str, np.ndarray] = {}
    for method, (maps, ms, note) in result.items():
        arrays[f"maps_{method}"] = np.asarray(maps, np.float32)
        arrays[f"ms_{method}"] = np.float64(ms)
        arrays[f"note_{method}"] = np.str_(note)
    np.savez(out, **arrays)


# -- the parent ----------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the table."""

    peer: Peer
    method: str
    ms: float | None = None
    err: float | None = None
    note: str = ""
    status: str = "ok"        # ok | disagrees | not compared | skipped | failed


def agreement(peer: np.ndarray, ours: np.ndarray) -> float:
    """How far a peer's maps are from mirdeconv's, each channel scaled by least squares.

    Parameters
    ----------
    peer, ours : np.ndarray, shape (channels, bands, frames)
        The peer's maps (seeded with 1 at each strongest unit) and mirdeconv's.

    Returns
    -------
    float
        The largest per-channel ``max |s a - b| / max |b|``, ``s = <a, b> / <a, a>``, over the
        channels whose map in mirdeconv is not all zero (``inf`` for another shape, 1 for a peer
        map that is all zero where mirdeconv's is not).
    """
    if peer.shape != ours.shape:
        return float("inf")
    worst = 0.0
    for a, b in zip(peer.astype(np.float64), ours.astype(np.float64)):
        top = np.abs(b).max()
        if top == 0:                       # a channel that never fires: zero in mirdeconv
            continue
        aa = float((a * a).sum())
        if aa == 0:
            return 1.0
        s = float((a * b).sum()) / aa
        worst = max(worst, float(np.abs(s * a - b).max() / top))
    return worst


def _missing(peer: Peer) -> str:
    for mod in peer.modules:
        if importlib.util.find_spec(mod) is None:
            return f"{mod} not installed ({INSTALL_HINT.get(mod, 'pip install ' + mod)})"
    return ""


def _spawn(peer: Peer, data: Path, tmp: Path) -> tuple[dict[str, np.ndarray] | None, str]:
    out = tmp / f"{peer.name}.npz"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", peer.name,
           "--data", str(data), "--out", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {WORKER_TIMEOUT_S} s"
    if proc.returncode != 0 or not out.exists():
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln.split(":")[0] or "Exception" in ln.split(":")[0]]
        last = (errors or lines or ["no output"])[-1]
        return None, f"worker exited with {proc.returncode}: {last}"
    with np.load(out, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}, ""


def compare(peers: list[Peer], data: Path, tmp: Path) -> tuple[list[Row], dict[str, np.ndarray]]:
    """Run each implementation in its own process on ``data``; its rows, and mirdeconv's maps.
    The first peer is mirdeconv (the reference)."""
    rows: list[Row] = []
    ours: dict[str, np.ndarray] = {}
    for peer in peers:
        missing = _missing(peer)
        got, why = (None, missing) if missing else _spawn(peer, data, tmp)
        print(f"  {peer.name}: {'done' if got is not None else why}", flush=True)
        for method in peer.methods:
            row = Row(peer, method)
            rows.append(row)
            if got is None:
                row.status, row.note = ("skipped" if missing else "failed"), why
                continue
            maps = got[f"maps_{method}"]
            row.ms, row.note = float(got[f"ms_{method}"]), str(got[f"note_{method}"])
            if peer.name.startswith("mirdeconv"):
                ours[method] = maps
                continue
            if method not in ours:
                row.status, row.note = "not compared", "mirdeconv did not run"
                continue
            row.err = agreement(maps, ours[method])
            if not row.err <= TOLERANCE:
                row.status = "disagrees"
    return rows, ours


def table(rows: list[Row], unit: str) -> tuple[float, str] | None:
    """Print the rows as a table; the fastest agreeing peer's (ratio, name)."""
    base = {r.method: r.ms for r in rows if r.peer.name.startswith("mirdeconv") and r.ms is not None}
    print(f"| implementation | method | ms for {unit} | x mirdeconv's time | max rel diff | note |")
    print("|---|---|---:|---:|---:|---|")
    best: tuple[float, str] | None = None
    for r in rows:
        ratio = None
        if r.status == "ok" and r.ms is not None and base.get(r.method):
            ratio = r.ms / base[r.method]
            if not r.peer.name.startswith("mirdeconv") and (best is None or ratio < best[0]):
                best = (ratio, f"{r.peer.name}, {r.method}")
        ms = _fmt(r.ms, ".1f")
        err = "reference" if r.peer.name.startswith("mirdeconv") and r.status == "ok" else _fmt(r.err, ".1e")
        status = "" if r.status == "ok" else f"**{r.status}** "
        shown_ratio = _fmt(ratio, ".2f") if ratio is not None else "-"
        print(f"| {r.peer.label} | {r.method} | {ms} | {shown_ratio} | {err} | {status}{r.note} |")
    print()
    return best


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> None:
    """Run every implementation in its own process and print the table (or, with ``--worker``,
    be one of those processes).

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", choices=sorted(WORKERS), help="(internal) run one implementation")
    p.add_argument("--data", help="(internal) the net's weights and the input, .npz")
    p.add_argument("--out", help="(internal) where the worker writes its maps and times, .npz")
    p.add_argument("--only", help="comma-separated implementations to run (mirdeconv always runs)")
    args = p.parse_args(argv)
    if args.worker:
        run_worker(args.worker, args.data, args.out)
        return

    peers = list(PEERS)
    if args.only:
        wanted = {"mirdeconv", *args.only.split(",")}
        unknown = wanted - set(WORKERS)
        if unknown:
            p.error(f"unknown implementation(s): {', '.join(sorted(unknown))}")
        peers = [peer for peer in PEERS if peer.name in wanted]

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ev = _harness()
    model = ev.build()
    rng = np.random.default_rng(0)
    X = np.log10(1 + 1e4 * rng.random((ev.FRAMES, ev.BANDS)) ** 4).astype(np.float32)  # as ev.main
    x = np.ascontiguousarray(X.T[None, :, :, None])                   # (1, bands, frames, 1)
    weights = model.get_weights()
    n = ev.CHANNELS[ev.LAYER - 1]
    load = os.getloadavg()
    machine = ev.machine_conv_gflops()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f}; conv throughput "
          f"(Conv2D 64x48x128x32 -> 32, fp32, engine_vs_reference.machine_conv_gflops): "
          f"{machine:.0f} GFLOP/s", flush=True)

    with tempfile.TemporaryDirectory(prefix="mirdeconv-peers-") as tmpdir:
        tmp = Path(tmpdir)
        data = tmp / "net.npz"
        np.savez(data, x=x, n_weights=np.int64(len(weights)), channels=np.asarray(ev.CHANNELS),
                 layer=np.int64(ev.LAYER), **{f"w{i}": w for i, w in enumerate(weights)})
        rows, ours = compare(peers, data, tmp)
        fcn = None
        folder = _won_folder()
        if not args.only or "captum" in args.only:
            if folder is None:
                print("  Won et al.'s FCN: skipped, its checkpoint is not found (../shared/models/won2020 "
                      "or MIRDECONV_WON2020_DIR)")
            else:
                frames, what = fcn_frames()
                fcn_data = tmp / "fcn.npz"
                np.savez(fcn_data, frames=frames, folder=np.str_(str(folder)))
                fcn = (what, *compare(list(FCN_PEERS), fcn_data, tmp))

    after = os.getloadavg()
    some = next(iter(ours.values()), None)
    fired = n if some is None else int((np.abs(some).reshape(len(some), -1).max(axis=1) > 0).sum())
    ran = any(r.peer.name == "mirdeconv" and r.ms is not None for r in rows)
    print()
    print(f"Choi-style net (engine_vs_reference.build), input {ev.BANDS}x{ev.FRAMES}x1, all {n} "
          f"channels of layer {ev.LAYER} (pool{ev.LAYER}), target = each channel's strongest unit; "
          f"each implementation in its own process, median of 5 after a warm-up; agreement over the "
          f"{fired} of {n} channels that fire (the others are all zero in mirdeconv); load average "
          f"{load[0]:.2f} before, {after[0]:.2f} after")
    best = table(rows, f"{n} channels")
    summary = ("peers: mirdeconv did not run, nothing compared" if not ran else
               "peers: no peer agreed with mirdeconv, nothing ranked" if best is None else
               f"peers: mirdeconv {best[0]:.2f}x ahead of the fastest peer ({best[1]})")
    if fcn is not None:
        what, fcn_rows, _ = fcn
        print(f"Won et al.'s MTAT FCN (PyTorch checkpoint, won2020 plugin), {what}, input 96x"
              f"{FCN_FRAMES}, all 128 features of {FCN_LAYER} (after its max-pool), target = each "
              "feature's strongest unit; each in its own process")
        fcn_best = table(fcn_rows, "128 features")
        summary += ("; Won et al.'s FCN (PyTorch): Captum did not agree or run" if fcn_best is None
                    else f"; Won et al.'s FCN (PyTorch): {fcn_best[0]:.2f}x ahead of Captum "
                         f"({fcn_best[1].split(', ')[1]})")
    print(summary)


if __name__ == "__main__":
    main()
