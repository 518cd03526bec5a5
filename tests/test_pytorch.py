"""PyTorch and ONNX models through the one engine: Won et al. 2020's taggers (their real
checkpoints, ../shared/models/won2020) opened through the ``won2020:`` plugin and through an
ONNX file a user exported from their own module, held to PyTorch itself:

* predictions equal PyTorch's on the same input frames;
* saliency equals ``torch.autograd`` seeded with the feature's own map;
* deconvnet and guided backprop equal Captum's ``NeuronDeconvolution`` and
  ``NeuronGuidedBackprop`` on the native module (after one scale per feature).

Two float32 implementations of a convolution round differently (here by ~1e-7), so where a
max-pool window holds two values closer than that, TensorFlow and PyTorch may take different
maxima and route that window's signal to different places.  Each comparison therefore finds
those near-tied windows in PyTorch's own forward pass and asserts agreement to 1e-4 at every
frame outside their reach (most of the track), and that every disagreement lies inside it.
"""

from __future__ import annotations

import numpy as np
import pytest

import mirdeconv
from mirdeconv.errors import ModelLoadError

from .conftest import MULDJORD, debian_file, shared_file

torch = pytest.importorskip("torch")
won = pytest.importorskip("mirdeconv_plugins.won2020")

SR = 16000
PATCH = 464_000          # 29 s at 16 kHz: 1,813 frames, the FCN's and CRNN's patch


@pytest.fixture(scope="module")
def folder():
    return shared_file("models/won2020/mtat_fcn.pth").parent


@pytest.fixture(scope="module")
def song():
    """29 s of Muldjord's "Chaos God" from 30 s on, at 16 kHz (METHOD.md section 7)."""
    from mirdeconv.audio import load

    y, sr = load(debian_file(MULDJORD / "chaos_god" / "song.ogg", "fretsonfire-songs-muldjord"),
                 sr=SR)
    return y[30 * SR:30 * SR + PATCH]


@pytest.fixture(scope="module")
def fcn(folder):
    return mirdeconv.load_model("won2020:mtat-fcn", folder=folder), won.build("mtat-fcn", folder)


@pytest.fixture(scope="module")
def crnn(folder):
    return mirdeconv.load_model("won2020:mtat-crnn", folder=folder), won.build("mtat-crnn", folder)


def frames_of(model, y):
    return model.representation.prepare(y, SR)


def to_torch(frames):
    """(frames, bands) -> (1, 1, bands, frames), PyTorch's layout."""
    return torch.tensor(np.ascontiguousarray(frames.T[None, None]), dtype=torch.float32)


def on_patches(model, net, y):
    """PyTorch's predictions on the very patches mirdeconv cuts from ``y`` (a batch)."""
    from mirdeconv.engine import model_input

    x, _ = model_input(model, frames_of(model, y).frames, whole=False)   # (n, 96, 1813, 1)
    with torch.no_grad():
        return net(torch.tensor(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))).numpy()


# -- the front end ------------------------------------------------------------------------------
def test_front_end_equals_their_torchaudio_front_end(folder, song):
    """mirdeconv's won2020() equals their front end computed with torch from the checkpoint's
    own window and mel filterbank (torchaudio's MelSpectrogram + AmplitudeToDB)."""
    state = won.checkpoint("mtat-fcn", folder)
    x = torch.tensor(song[:10 * SR], dtype=torch.float64)
    spec = torch.stft(x, 512, 256, window=state["spec.spectrogram.window"].double(), center=True,
                      pad_mode="reflect", return_complex=True).abs() ** 2       # (257, T)
    mel = state["spec.mel_scale.fb"].double().T @ spec
    ref = (10 * torch.log10(mel.clamp_min(1e-10))).numpy().T
    ours = mirdeconv.representations.won2020().prepare(song[:10 * SR], SR).frames
    diff = np.abs(ours - ref)
    assert ours.shape == ref.shape == (626, 96)
    assert np.median(diff) < 1e-4 and np.percentile(diff, 99) < 1e-3


# -- predictions ---------------------------------------------------------------------------------
def test_fcn_predictions_equal_pytorch_and_rock_is_the_top_tag(fcn, song):
    model, net = fcn
    act, labels, how = mirdeconv.predict(model, song, SR)
    with torch.no_grad():
        ref = net(to_torch(frames_of(model, song).frames)).numpy()
    assert how == "the frozen graph" and act.shape == ref.shape == (1, 50)
    assert np.abs(act - ref).max() < 1e-4
    assert labels[int(act[0].argmax())] == labels[int(ref[0].argmax())] == "rock"
    assert act[0, labels.index("rock")] == pytest.approx(0.93, abs=0.01)   # METHOD.md section 7


def test_crnn_predictions_equal_pytorch_gru(crnn, song):
    """torch.nn.GRU in the module, its equations written out step by step in the graph, on
    the very patches the engine cut (several: a batch)."""
    model, net = crnn
    y = np.concatenate([song, song[::-1]])
    act, labels, _ = mirdeconv.predict(model, y, SR)
    ref = on_patches(model, net, y)
    assert act.shape == ref.shape and len(act) >= 2
    assert np.abs(act - ref).max() < 1e-4
    assert labels[int(act[0].argmax())] == "rock"


# -- deconvolution against PyTorch ---------------------------------------------------------------
def tie_frames(net, blocks, x, n_blocks, tol=1e-5):
    """Input frames reached by the max-pool windows of the first ``n_blocks`` blocks whose
    two largest (positive) values lie within ``tol`` of each other in PyTorch's forward pass:
    there TensorFlow's rounding may pick the other maximum.  Every block is a 3x3 conv (padding
    1) and a max-pool; ``blocks`` their pool kernels (bands, frames)."""
    outs = []
    hooks = [getattr(net, f"layer{k + 1}").relu.register_forward_hook(
        lambda mod, i, o: outs.append(o.detach())) for k in range(n_blocks)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    reached = np.zeros(x.shape[-1], bool)
    step, reach = 1, 0
    for o, (kh, kw) in zip(outs, blocks):
        reach += step                               # a 3x3 conv reaches one unit further
        n, c, H, W = o.shape
        w = o[..., :H // kh * kh, :W // kw * kw].reshape(n, c, H // kh, kh, W // kw, kw)
        w = w.permute(0, 1, 2, 4, 3, 5).reshape(n, c, H // kh, W // kw, kh * kw)
        top = w.topk(2, dim=-1).values
        near = ((top[..., 0] - top[..., 1]) <= tol * top[..., 0]) & (top[..., 0] > 0)
        for j in np.unique(np.nonzero(near.numpy())[3]):
            lo, hi = j * kw * step - reach, (j + 1) * kw * step + reach
            reached[max(lo, 0):hi] = True
        step *= kw
    return reached


def reference(net, module, x, k, method):
    """PyTorch's own map of feature k of ``module``'s output, seeded with that map."""
    from captum.attr import NeuronDeconvolution, NeuronGuidedBackprop

    xi = x.clone().requires_grad_(True)
    if method == "saliency":
        got = {}
        h = module.register_forward_hook(lambda mod, i, o: got.__setitem__("a", o))
        net(xi)
        h.remove()
        a = got["a"]
        seed = torch.zeros_like(a)
        seed[:, k] = a[:, k].detach()
        (g,) = torch.autograd.grad(a, xi, seed)
    else:
        cls = NeuronDeconvolution if method == "deconvnet" else NeuronGuidedBackprop
        g = cls(net, module).attribute(
            xi, neuron_selector=lambda o: (o[:, k] * o[:, k].detach()).sum())
    return g.detach()[0, 0].numpy().T                             # (frames, bands)


FCN_POOLS = ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))
CRNN_POOLS = ((2, 2), (3, 3), (4, 4), (4, 4))


@pytest.mark.slow
@pytest.mark.parametrize("which,layer,block,pools", [
    ("fcn", "layer3.relu", 3, FCN_POOLS), ("crnn", "layer2.relu", 2, CRNN_POOLS)])
@pytest.mark.parametrize("method", ["saliency", "deconvnet", "guided"])
def test_deconvolution_equals_pytorch(request, song, which, layer, block, pools, method):
    model, net = request.getfixturevalue(which)
    track = frames_of(model, song)
    x = to_torch(track.frames)
    feats = list(range(0, 128, 9))
    res = mirdeconv.deconvolve(model, track=track, layer=layer, features=feats, method=method)
    ties = tie_frames(net, pools, x, block - 1)
    assert ties.mean() < 0.5                         # most of the track is compared
    differ = 0
    for j, k in enumerate(feats):
        ref = reference(net, getattr(net, f"layer{block}").relu, x, k, method)
        got = res.masks[j]
        if method != "saliency":                     # Captum's maps up to one scale
            got = got * (got * ref).sum() / max((got * got).sum(), 1e-30)
        scale = np.abs(ref).max()
        assert scale > 0
        off = np.abs(got - ref) > 1e-4 * scale
        assert not off[~ties].any(), f"feature {k}: {off[~ties].sum()} values differ outside the ties"
        differ += off.sum()
    assert differ / res.masks.size < 0.01            # even there, most values agree


# -- a user's own module, exported to ONNX by the user ----------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("which", ["fcn", "crnn"])
def test_an_onnx_file_exported_from_the_users_module(request, song, tmp_path, which):
    """torch.onnx.export with a free batch axis, as ONNX Runtime's users write it (the CRNN:
    an ONNX GRU in the file); the file opens with its layer names, takes a batch of patches,
    and predicts what PyTorch predicts."""
    model, user = request.getfixturevalue(which)
    path = tmp_path / f"{which}.onnx"
    torch.onnx.export(user, (torch.zeros(2, 1, 96, 1813),), str(path), input_names=["mel"],
                      output_names=["tags"], dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    m = mirdeconv.load_model(path, representation="won2020", input_axes="NCFT",
                             labels=won.TAGS)
    assert m.family == "onnx" and m.input_axes == "NFTC" and m.input_length == 1813
    assert [li.name for li in m.layers][:3] == ["layer1.bn", "layer1.relu", "layer1.mp"]
    assert m.layer("layer3.relu").receptive_field == model.layer("layer3.relu").receptive_field
    y = np.concatenate([song, song[::-1]])
    act, labels, _ = mirdeconv.predict(m, y, SR)
    ref = on_patches(m, user, y)
    assert act.shape == ref.shape and len(act) >= 2 and np.abs(act - ref).max() < 1e-4
    assert labels[int(act[0].argmax())] == "rock"


def test_an_onnx_file_with_a_batch_of_one(fcn, song, tmp_path):
    """Exported with a batch of one (torch.onnx.export's default): the FCN's flatten is a
    reshape that fixes the batch; it is freed, and the graph takes a batch of patches."""
    model, net = fcn
    path = tmp_path / "fcn1.onnx"
    torch.onnx.export(net, (torch.zeros(1, 1, 96, 1813),), str(path), dynamo=True)
    m = mirdeconv.load_model(path, representation="won2020", labels=won.TAGS)
    assert m.input_axes == "NFTC"                          # NCFT, guessed from the shape
    y = np.concatenate([song, song[::-1]])
    act, _, _ = mirdeconv.predict(m, y, SR)
    ref = on_patches(m, net, y)
    assert act.shape == ref.shape and len(act) >= 2 and np.abs(act - ref).max() < 1e-4


def test_a_torchscript_file_opens(fcn, tmp_path, song):
    model, net = fcn
    path = tmp_path / "fcn.pt"
    torch.jit.trace(net, torch.zeros(1, 1, 96, 1813)).save(str(path))
    m = mirdeconv.load_model(path, representation="won2020", input_axes="NCFT", input_length=1813,
                             labels=won.TAGS, allow_unsafe=True)
    assert m.family == "pytorch" and m.layer("layer3.relu").n_features == 128
    act, _, _ = mirdeconv.predict(m, song, SR)
    with torch.no_grad():
        ref = net(to_torch(frames_of(m, song).frames)).numpy()
    assert np.abs(act - ref).max() < 1e-4


def test_a_checkpoint_is_not_a_model(folder):
    with pytest.raises(ModelLoadError, match="not a TorchScript file: a PyTorch checkpoint"):
        mirdeconv.load_model(folder / "mtat_fcn.pth", representation="won2020")


# -- musicnn: every layer -----------------------------------------------------------------------
@pytest.mark.slow
def test_musicnn_deconvolves_and_auralises_every_layer(folder, song):
    model = mirdeconv.load_model("won2020:mtat-musicnn", folder=folder)
    y = song[:10 * SR]
    names = [li.name for li in model.layers]
    assert names[:3] == ["layers.0.bn", "layers.0.relu", "layers.0"]
    assert {"cat", "layer1.relu", "add", "add_1", "cat_1"} <= set(names)
    timbral, temporal = model.layer("layers.0.relu"), model.layer("layers.2.relu")
    assert timbral.receptive_field == (7, 67) and timbral.n_features == 204
    assert temporal.receptive_field[0] == 129 and temporal.n_features == 51
    for li in model.layers:
        for method in ("deconvnet", "guided", "saliency"):
            res = mirdeconv.deconvolve(model, y, SR, layer=li.name, features=[0, 1], method=method)
            assert res.masks.shape == (2, 626, 96) and np.isfinite(res.masks).all()
            assert np.abs(res.masks).max() > 0, (li.name, method)
        sound = mirdeconv.auralise(model, y, SR, layer=li.name, features=[0])
        assert sound.audio.shape[-1] > 9 * sound.sr and np.isfinite(sound.audio).all()


def test_musicnn_saliency_equals_autograd(folder, song):
    """Through the timbral branch's max over bands, the temporal branch's mean over bands,
    the concatenation and two residual adds (``add_1`` = layer3(add) + add)."""
    model = mirdeconv.load_model("won2020:mtat-musicnn", folder=folder)
    net = won.build("mtat-musicnn", folder)
    track = frames_of(model, song[:187 * 256])                        # one patch: 188 frames
    assert track.frames.shape == (188, 96)
    res = mirdeconv.deconvolve(model, track=track, layer="add_1", features=[0, 5, 40],
                               method="saliency")
    for j, k in enumerate(res.features):
        x = to_torch(track.frames).requires_grad_(True)
        front = torch.cat([m(net.spec_bn(x)) for m in net.layers], 1)
        r1 = net.layer1(front)
        add = net.layer2(r1) + r1
        add_1 = net.layer3(add) + add
        seed = torch.zeros_like(add_1)
        seed[:, k] = add_1[:, k].detach()
        (g,) = torch.autograd.grad(add_1, x, seed)
        ref = g[0, 0].numpy().T
        assert np.abs(ref).max() > 0
        assert np.abs(res.masks[j] - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.slow
def test_crnn_explanation_through_the_gru_equals_autograd(crnn, song):
    """Saliency of the CRNN's "rock" logit: back through the dense layer, the GRU's 36 steps
    (written out: matrix products, gates, the last step taken) and the conv blocks, against
    torch.autograd through torch.nn.GRU."""
    model, net = crnn
    track = frames_of(model, song)
    e = mirdeconv.explain(model, track=track, tag="rock", method="saliency", output="logit")
    x = to_torch(track.frames).requires_grad_(True)
    h = net.spec_bn(x)
    for i in range(4):
        h = getattr(net, f"layer{i + 1}")(h)
    seq, _ = net.layer5(h.squeeze(2).permute(0, 2, 1))
    logit = net.dense(seq[:, -1])[0, won.TAGS.index("rock")]
    (g,) = torch.autograd.grad(logit, x)
    ref = g[0, 0].numpy().T
    ties = tie_frames(net, CRNN_POOLS, to_torch(track.frames), 4)
    assert e.masks.shape == (1, 1813, 96) and ties.mean() < 0.5
    off = np.abs(e.masks[0] - ref) > 1e-4 * np.abs(ref).max()
    assert not off[~ties].any()


# -- squeeze-and-excitation, from PyTorch ---------------------------------------------------------
def ruled(kind, method):
    """A PyTorch non-linearity whose backward follows ``method``: the plain derivative
    (saliency), relu(g) (deconvnet), relu(g) * f'(x) (guided)."""
    f = {"relu": torch.relu, "sigmoid": torch.sigmoid, "silu": torch.nn.functional.silu}[kind]

    class Ruled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return f(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            with torch.enable_grad():
                xx = x.detach().requires_grad_(True)
                (d,) = torch.autograd.grad(f(xx).sum(), xx)
            if method == "saliency":
                return g * d
            return torch.relu(g) if method == "deconvnet" else torch.relu(g) * d

    return Ruled.apply


def se_block(rule=None):
    """conv, batch norm, SiLU, squeeze-and-excitation (mean over bands and frames, 1x1 convs,
    ReLU, sigmoid gate times the map), a 1x1 projection and a residual add."""
    nn = torch.nn
    act = (lambda k: (lambda x: ruled(k, rule)(x))) if rule else (
        lambda k: {"relu": torch.relu, "sigmoid": torch.sigmoid,
                   "silu": torch.nn.functional.silu}[k])

    class SE(nn.Module):
        def __init__(self):
            super().__init__()
            self.reduce, self.expand = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)

        def forward(self, x):
            s = act("relu")(self.reduce(x.mean(dim=(2, 3), keepdim=True)))
            return x * act("sigmoid")(self.expand(s))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.se, self.proj = nn.Conv2d(1, 8, 3, padding=1), \
                nn.BatchNorm2d(8), SE(), nn.Conv2d(8, 8, 1)

        def forward(self, x):
            x = act("silu")(self.bn(self.conv(x)))
            return self.proj(self.se(x)) + x

    torch.manual_seed(0)
    block = Block()
    with torch.no_grad():
        block.bn.running_mean.uniform_(-0.5, 0.5)
        block.bn.running_var.uniform_(0.5, 2.0)
    return block.eval()


@pytest.mark.parametrize("method", ["saliency", "deconvnet", "guided"])
def test_a_pytorch_squeeze_excite_block(method):
    """The gate multiplied into the map it was computed from, exported by mirdeconv itself;
    every method against autograd on the same block with each non-linearity's rule."""
    plain = se_block()
    model = mirdeconv.load_model(plain, representation="won2020", input_axes="NCFT",
                                 example_input=torch.zeros(1, 1, 96, 64), name="se")
    assert {"se", "add"} <= {li.name for li in model.layers}
    rng = np.random.default_rng(1)
    frames = rng.standard_normal((64, 96)).astype(np.float32)
    from mirdeconv.representations import TrackInput

    track = TrackInput(frames=frames, stft=np.zeros((257, 64), np.complex64),
                       audio=np.zeros(64 * 256, np.float32), sr=SR,
                       representation=model.representation)
    res = mirdeconv.deconvolve(model, track=track, layer="se", features=[0, 3, 7], method=method)
    ruled_block = se_block(method)
    for j, k in enumerate(res.features):
        x = to_torch(frames).requires_grad_(True)
        out: dict = {}
        h = ruled_block.se.register_forward_hook(lambda m, i, o, out=out: out.__setitem__("a", o))
        ruled_block(x)
        h.remove()
        seed = torch.zeros_like(out["a"])
        seed[:, k] = out["a"][:, k].detach()
        (g,) = torch.autograd.grad(out["a"], x, seed)
        ref = g[0, 0].numpy().T
        assert np.abs(ref).max() > 0
        assert np.abs(res.masks[j] - ref).max() <= 1e-4 * np.abs(ref).max(), (k, method)


# -- the command line, the registry, the app ----------------------------------------------------
def test_an_onnx_file_on_the_command_line(fcn, tmp_path, capsys):
    """`mirdeconv layers net.onnx` with the representation from NAME.mirdeconv.json beside it,
    or from --representation FILE.json and --input-axes."""
    import json

    from mirdeconv.cli import main

    _, net = fcn
    path = tmp_path / "fcn.onnx"
    torch.onnx.export(net, (torch.zeros(1, 1, 96, 1813),), str(path), dynamo=True)
    rep = tmp_path / "won.json"
    rep.write_text(json.dumps(mirdeconv.representations.won2020().to_dict()))
    assert main(["layers", str(path), "--representation", str(rep), "--input-axes", "NCFT"]) == 0
    out = capsys.readouterr().out
    assert "input NFTC, 1813 frames per patch" in out and "layer3.relu" in out
    assert " 128 " in out.split("layer3.relu")[1].splitlines()[0]
    (tmp_path / "fcn.mirdeconv.json").write_text(json.dumps({"representation": "won2020",
                                                             "labels": won.TAGS}))
    assert main(["layers", str(path)]) == 0
    assert "layer5.mp" in capsys.readouterr().out


def test_won2020_models_are_offered_when_configured(folder, monkeypatch, capsys):
    from mirdeconv.app.logic import model_choices
    from mirdeconv.cli import main

    monkeypatch.delenv("MIRDECONV_WON2020_DIR", raising=False)
    assert not any(m.startswith("won2020:") for m in model_choices())
    assert main(["models"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("won2020:mtat-fcn"))
    assert line.endswith("(not available: set MIRDECONV_WON2020_DIR to the folder of the checkpoints)")
    with pytest.raises(ModelLoadError, match="MIRDECONV_WON2020_DIR"):
        mirdeconv.load_model("won2020:mtat-fcn")
    monkeypatch.setenv("MIRDECONV_WON2020_DIR", str(folder))
    assert {"won2020:mtat-fcn", "won2020:mtat-crnn", "won2020:mtat-musicnn"} <= set(model_choices())
    main(["models"])
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("won2020:mtat-musicnn"))
    assert "musicnn (Pons et al.)" in line and "not available" not in line


def test_without_the_torch_extra_the_error_says_what_to_install(monkeypatch, tmp_path):
    import sys

    from mirdeconv.errors import MissingExtraError

    for name in ("onnx", "onnx.reference"):
        monkeypatch.setitem(sys.modules, name, None)       # as if not installed
    (tmp_path / "x.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(MissingExtraError, match=r'pip install "mirdeconv\[torch\]"'):
        mirdeconv.load_model(tmp_path / "x.onnx", representation="won2020")


@pytest.mark.slow
def test_every_command_on_a_won2020_model(folder, song, tmp_path, monkeypatch, capsys):
    """deconvolve, auralise, analyse, explain, sanity and atlas on won2020:mtat-musicnn, from
    the command line, with the checkpoints' folder configured."""
    import soundfile as sf

    from mirdeconv.cli import main

    monkeypatch.setenv("MIRDECONV_WON2020_DIR", str(folder))
    songs = tmp_path / "songs"
    songs.mkdir()
    sf.write(songs / "chaos.wav", song[:8 * SR], SR)
    clip, m = str(songs / "chaos.wav"), "won2020:mtat-musicnn"
    runs = {
        "deconvolve": ["deconvolve", m, clip, "--layer", "add_1", "--features", "0-3"],
        "auralise": ["auralise", m, clip, "--layers", "layers.0.relu,layer2.relu", "--features", "0-1"],
        "analyse": ["analyse", m, clip, "--layers", "layer1.relu", "--features", "0-3"],
        "explain": ["explain", m, clip, "--tag", "rock"],
        "sanity": ["sanity", m, clip, "--methods", "saliency", "--layer", "layer1.relu",
                   "--top", "2", "--selectivity-layers", "layer1.relu"],
        "atlas": ["atlas", m, str(songs), "--layers", "layer1.relu", "--top-k", "2", "--excerpt", "2",
                  "--workers", "1"],
    }
    for name, argv in runs.items():
        out = tmp_path / name
        assert main([*argv, "--out", str(out)]) == 0, (name, capsys.readouterr().err[-2000:])
        assert any(p.suffix in (".wav", ".parquet", ".json", ".npy") for p in out.rglob("*")), name
    assert "rock" in capsys.readouterr().out
