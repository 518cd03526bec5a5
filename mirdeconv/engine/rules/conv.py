"""Rules of the convolutions: transposed convolutions with the same kernels (flipped).

Four ways, picked per step: a one-matmul rule for tiny kernels from one channel into many
(the first layer of a spectrogram net, where a 1-channel transposed conv is memory-bound), a
polyphase rule for strided convolutions into few channels (the first layer of a waveform
net: CREPE's 512-sample kernels at stride 4, a sample-level net's stride 3, where
``Conv2DBackpropInput`` runs 10-20x below the machine's conv throughput), the dense
``Conv2DBackpropInput`` otherwise, and a compact rule (a depthwise conv with each feature's
own kernel slice) for the first convolution below the seed (see :mod:`..fused`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UnsupportedGraphError
from ..step import CellsMajor, Context, Step, merge, saved_input, saved_shape, split
from ..table import register, unsupported

__all__ = ["conv_geometry", "pads", "is_unit_stride"]


def conv_geometry(ctx: Context, step: Step) -> tuple[list, list, str, list]:
    """``(strides, dilations, padding, explicit_paddings)`` of an NHWC convolution."""
    g, node = ctx.graph, step.node
    fmt = g.attr(node, "data_format") or "NHWC"
    if fmt != "NHWC":
        raise UnsupportedGraphError(f"{node.name}: data_format {fmt} is not supported (NHWC only)")
    return (g.attr(node, "strides") or [1, 1, 1, 1], g.attr(node, "dilations") or [1, 1, 1, 1],
            g.attr(node, "padding"), g.attr(node, "explicit_paddings") or [])


def is_unit_stride(strides: list, dilations: list) -> bool:
    """Stride 1 and no dilation."""
    return list(strides) == [1, 1, 1, 1] and list(dilations) == [1, 1, 1, 1]


def pads(tf: Any, padding: str, explicit: list, H: Any, W: Any, Ho: Any, Wo: Any,
         kh: int, kw: int) -> tuple[Any, Any]:
    """Top/left padding of a stride-1 convolution."""
    if padding == "VALID":
        return 0, 0
    if padding == "EXPLICIT":
        return explicit[2], explicit[4]
    return (tf.maximum(Ho - 1 + kh - H, 0) // 2, tf.maximum(Wo - 1 + kw - W, 0) // 2)


@register("convolution")
def convolution(ctx: Context, step: Step) -> None:
    _convolution(ctx, step, depthwise=False)


@register("depthwise_convolution")
def depthwise_convolution(ctx: Context, step: Step) -> None:
    _convolution(ctx, step, depthwise=True)


def _convolution(ctx: Context, step: Step, depthwise: bool) -> None:
    node = step.node
    if step.var_inputs != [0]:
        raise UnsupportedGraphError(f"{node.name}: convolution kernel depends on the input")
    strides, dil, padding, explicit = conv_geometry(ctx, step)
    w = ctx.graph.const_value(step.inputs[1])
    step.save = [saved_input(step, 1), saved_shape(ctx, step, 0)]
    step.grouped = (not depthwise and w is not None
                    and ctx.channels(step.inputs[0]) not in (None, w.shape[2]))
    small = (not depthwise and not step.grouped and w is not None and w.shape[2] == 1
             and w.shape[0] * w.shape[1] <= 32 and w.shape[3] >= MATMUL_RULE_CHANNELS
             and is_unit_stride(strides, dil))
    polyphase = (not depthwise and not step.grouped and w is not None and w.shape[2] <= 8
                 and list(dil) == [1, 1, 1, 1] and max(strides) > 1)
    full_width = (not depthwise and not step.grouped and w is not None and padding == "VALID"
                  and is_unit_stride(strides, dil)
                  and (ctx.shapes.get(step.inputs[0]) or (None,) * 4)[2] == w.shape[1] > 1)
    if full_width:
        step.rule = _full_width_rule(ctx.tf, w.shape)
    elif small:
        step.rule = _matmul_rule(ctx.tf, w.shape, padding, explicit)
    elif polyphase:
        step.rule = _polyphase_rule(ctx.tf, w.shape, strides, padding, explicit)
    else:
        step.rule = _dense_rule(ctx.tf, depthwise, strides, dil, padding, explicit)
    plain = not depthwise and not step.grouped and padding in ("SAME", "VALID")
    if full_width:
        step.compact_rule = _compact_full_width_rule(ctx.tf, w.shape)
    elif plain and is_unit_stride(strides, dil):
        kh, kw = (w.shape[0], w.shape[1]) if w is not None else (None, None)
        step.compact_rule = _compact_rule(ctx.tf, padding, kh, kw)
    elif (plain and w is not None and w.shape[1] == 1 and list(dil) == [1, 1, 1, 1]
          and strides[2] == 1):
        step.compact_rule = _compact_strided_rule(ctx.tf, w.shape, int(strides[1]), padding)


#: Output channels from which a tiny one-channel kernel's transposed convolution runs as
#: one matmul (:func:`_matmul_rule`): measured on this kind of CPU (64 features, 96 x 256),
#: 3 x 3 x 1 x 32 took 22 ms as a matmul and 31 ms as ``Conv2DBackpropInput``, 3 x 3 x 1 x 64
#: 42 and 60 ms; into 4-16 channels (TempoCNN's 5 x 1 x 1 x 4, 3 x 3 x 1 x 8, 3 x 3 x 2 x 16)
#: ``Conv2DBackpropInput`` took a quarter to a half of the matmul's time.
MATMUL_RULE_CHANNELS = 32


def _matmul_rule(tf: Any, shape: tuple, padding: str, explicit: list) -> Any:
    """Z[(i, j), ...] = W[i, j, 0, :] . g: one matmul, then every tap a shifted plane (a
    kernel from one channel)."""
    kh, kw, _, cout = shape

    def rule(g: Any, sv: list, F: Any) -> list:
        W, xs = sv
        H, Wd = xs[1], xs[2]
        Ho, Wo = tf.shape(g)[2], tf.shape(g)[3]
        pt, pl = pads(tf, padding, explicit, H, Wd, Ho, Wo, kh, kw)
        Wm = tf.reshape(W, [kh * kw, cout])
        gs = tf.shape(g)                      # F, N, Ho, Wo, Cout
        Z = tf.matmul(Wm, tf.reshape(g, [-1, cout]), transpose_b=True)
        Z = tf.reshape(Z, tf.concat([[kh * kw], gs[:-1]], 0))   # K, F, N, Ho, Wo
        Z = tf.pad(Z, [[0, 0], [0, 0], [0, 0], [kh - 1, H + kh], [kw - 1, Wd + kw]])
        dx = None
        for i in range(kh):
            for j in range(kw):
                sl = Z[i * kw + j, :, :, pt + kh - 1 - i: pt + kh - 1 - i + H,
                       pl + kw - 1 - j: pl + kw - 1 - j + Wd]
                dx = sl if dx is None else dx + sl
        return [dx[..., None]]

    return rule


#: Output channels below which the polyphase rule groups rows into blocks (see
#: :func:`_polyphase_rule`): a convolution writing 4 channels runs at a fraction of the
#: machine's throughput, one writing 32 near it.
POLYPHASE_CHANNELS = 32


def _polyphase_rule(tf: Any, shape: tuple, strides: list, padding: str, explicit: list) -> Any:
    """A strided transposed convolution as one stride-1 forward convolution.

    With strides ``(sh, sw)``, input row ``sh * a + p`` (phase ``p``) receives the taps
    ``W[sh * j + p]`` of output rows ``a - j`` only: every phase is a stride-1 correlation of
    the gradient with a sub-kernel.  The ``sh * sw`` phases of each input channel are the
    output channels of one convolution, interleaved back into rows and columns, then cropped
    by the forward pass's padding.  When that leaves few channels (CREPE's first layer: 4
    phases of one sample channel) ``r`` consecutive output rows form a block: block ``b``
    of the gradient's rows (``r`` rows of ``Cout`` channels, as channels) reaches block
    ``b + d`` through the sub-kernel ``K[d][(u', co), (u, p, ci)] = W[sh (r d + u - u') + p,
    ci, co]``, so the convolution runs over ``r`` times fewer rows with ``r`` times more
    channels in and out (kernel ``(D, ceil(kw/sw), r Cout, r sh sw Cin)``).
    """
    kh, kw, cin, cout = shape
    sh, sw = int(strides[1]), int(strides[2])
    jh, jw = -(-kh // sh), -(-kw // sw)
    r = max(1, -(-POLYPHASE_CHANNELS // (sh * sw * cin)))
    D = (jh + r - 2) // r + 1
    # K[d, u', u] = the sub-kernel row j = r d + u - u' (jh: a zero row)
    d, u1, u = np.meshgrid(np.arange(D), np.arange(r), np.arange(r), indexing="ij")
    j = r * d + u - u1
    rows = np.where((j >= 0) & (j < jh), j, jh)

    def rule(g: Any, sv: list, F: Any) -> list:
        W, xs = sv
        H, Wd = xs[1], xs[2]
        gm = merge(tf, g)                                     # F*N, Ho, Wo, Cout
        Ho, Wo = tf.shape(gm)[1], tf.shape(gm)[2]
        K = tf.pad(W, [[0, jh * sh - kh], [0, jw * sw - kw], [0, 0], [0, 0]])
        K = tf.reshape(K, [jh, sh, jw, sw, cin, cout])
        K = tf.transpose(K, [0, 2, 5, 1, 3, 4])               # jh, jw, cout, sh, sw, cin
        K = tf.concat([K, tf.zeros([1, jw, cout, sh, sw, cin], K.dtype)], 0)
        K = tf.gather(K, rows)                                # D, r(u'), r(u), jw, cout, sh, sw, cin
        K = tf.transpose(K, [0, 3, 1, 4, 2, 5, 6, 7])         # D, jw, u', cout, u, sh, sw, cin
        K = tf.reshape(tf.reverse(K, [0, 1]), [D, jw, r * cout, r * sh * sw * cin])
        if padding == "VALID":
            pt, pl = 0, 0
        elif padding == "EXPLICIT":
            pt, pl = explicit[2], explicit[4]
        else:
            pt = tf.maximum((Ho - 1) * sh + kh - H, 0) // 2
            pl = tf.maximum((Wo - 1) * sw + kw - Wd, 0) // 2
        nb = (Ho + r - 1) // r                                # blocks of r gradient rows
        gb = tf.pad(gm, [[0, 0], [0, nb * r - Ho], [0, 0], [0, 0]])
        gb = tf.reshape(tf.transpose(tf.reshape(gb, tf.stack([-1, nb, r, Wo, cout])), [0, 1, 3, 2, 4]),
                        tf.stack([-1, nb, Wo, r * cout]))
        y = tf.nn.conv2d(tf.pad(gb, [[0, 0], [D - 1, D - 1], [jw - 1, jw - 1], [0, 0]]), K,
                         1, "VALID")                          # F*N, nb+D-1, Wo+jw-1, (u, phases)
        ys = tf.shape(y)
        y = tf.reshape(tf.transpose(tf.reshape(y, [ys[0], ys[1], ys[2], r, sh, sw, cin]),
                                    [0, 1, 3, 4, 2, 5, 6]), [ys[0], ys[1] * r * sh, ys[2] * sw, cin])
        rows_out = ys[1] * r * sh
        y = tf.pad(y, [[0, 0], [0, tf.maximum(pt + H - rows_out, 0)],   # rows no output saw
                       [0, tf.maximum(pl + Wd - ys[2] * sw, 0)], [0, 0]])
        return [split(tf, y[:, pt:pt + H, pl:pl + Wd], F)]

    return rule


def _dense_rule(tf: Any, depthwise: bool, strides: list, dil: list, padding: str,
                explicit: list) -> Any:
    backprop = (tf.raw_ops.DepthwiseConv2dNativeBackpropInput if depthwise
                else tf.raw_ops.Conv2DBackpropInput)

    def rule(g: Any, sv: list, F: Any) -> list:
        W, xs = sv
        gm = merge(tf, g)
        sizes = tf.concat([tf.shape(gm)[:1], xs[1:]], 0)
        dx = backprop(input_sizes=sizes, filter=W, out_backprop=gm, strides=strides,
                      padding=padding, explicit_paddings=explicit, dilations=dil)
        return [split(tf, dx, F)]

    return rule


def _compact_rule(tf: Any, padding: str, kh: int | None, kw: int | None) -> Any:
    """Per feature f: its one-channel map through conv^T with W[..., f] only, i.e. a
    depthwise correlation of the padded map with the flipped, gathered kernels."""

    def rule(g: Any, sv: list, feats: Any) -> CellsMajor:
        W, xs = sv
        H, Wd = xs[1], xs[2]
        Ho, Wo = tf.shape(g)[2], tf.shape(g)[3]
        pt, pl = pads(tf, padding, [], H, Wd, Ho, Wo, kh, kw)
        pb, pr = Ho - H - pt + kh - 1, Wo - Wd - pl + kw - 1
        x = tf.transpose(g, [1, 2, 3, 0])                          # N, Ho, Wo, F
        x = tf.pad(x, [[0, 0], [kh - 1 - pt, kh - 1 - pb], [kw - 1 - pl, kw - 1 - pr], [0, 0]])
        k = tf.transpose(tf.reverse(tf.gather(W, feats, axis=3), [0, 1]), [0, 1, 3, 2])
        y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=k, strides=[1, 1, 1, 1],
                                             padding="VALID")      # N, H, W, F*Cin
        ys = tf.shape(y)
        y = tf.reshape(y, tf.stack([ys[0], ys[1], ys[2], tf.shape(feats)[0], tf.shape(W)[2]]))
        return CellsMajor(y, tf)                                   # N, H, W, F, Cin

    return rule


def _compact_strided_rule(tf: Any, shape: tuple, sh: int, padding: str) -> Any:
    """The compact rule of a convolution strided along the height with a one-column kernel
    (a waveform net's first layer: CREPE's 512 samples at stride 4), as blocks of a banded
    Toeplitz matrix: the input is cut into blocks of ``B = r * sh`` rows; the rows that reach
    block ``m`` are the ``Lg`` signal values from ``r * m + c0`` on, each feature's own
    kernel gives one (Lg, B * cin) matrix for every block, and the whole transposed
    convolution is one batched matmul of the framed signals with these matrices.  Blocks of
    about half the kernel keep the framing to a few copies of the (one-channel) signal and
    the multiply-adds to about 1.5 times the kernel's taps per row (the depthwise
    transposed convolution TensorFlow offers runs 3x slower here, the dense one with every
    feature's full gradient 100x)."""
    kh, _, cin, _ = shape
    r = max(1, -(-kh // (2 * sh)))
    B = r * sh

    def rule(g: Any, sv: list, feats: Any) -> Any:
        W, xs = sv
        H = xs[1]
        nf, n, Ho, Wd = (tf.shape(g)[i] for i in range(4))
        pt = tf.maximum((Ho - 1) * sh + kh - H, 0) // 2 if padding == "SAME" else 0
        c0 = -((kh - 1 - pt) // sh)                              # first row reaching block 0
        Lg = (B - 1 + pt) // sh - c0 + 1
        M = (H + B - 1) // B
        x = tf.reshape(tf.transpose(g, [0, 1, 3, 2]), tf.stack([nf, n * Wd, Ho]))
        need = r * (M - 1) + Lg
        x = tf.pad(x, [[0, 0], [0, 0], [tf.maximum(-c0, 0), tf.maximum(need + c0 - Ho, 0)]])
        x = x[:, :, tf.maximum(c0, 0):][:, :, :need]
        frames = tf.reshape(tf.signal.frame(x, Lg, r), tf.stack([nf, n * Wd * M, Lg]))
        # T[l, e] = kernel tap e - sh * (c0 + l) + pt (zero outside the kernel)
        tap = (tf.range(B)[None, :] - sh * (c0 + tf.range(Lg))[:, None] + pt)
        tap = tf.where((tap >= 0) & (tap < kh), tap, kh)
        k = tf.concat([tf.gather(W[:, 0], feats, axis=2), tf.zeros([1, cin, nf], W.dtype)], 0)
        T = tf.gather(tf.transpose(k, [2, 0, 1]), tap, axis=1)     # F, Lg, B, cin
        y = tf.matmul(frames, tf.reshape(T, tf.stack([nf, Lg, B * cin])))
        y = tf.reshape(y, tf.stack([nf, n, Wd, M * B, cin]))[:, :, :, :H]
        return tf.transpose(y, [0, 1, 3, 2, 4])                    # F, N, H, W, cin

    return rule


def _full_width_rule(tf: Any, shape: tuple) -> Any:
    """A convolution whose kernel spans its input's whole width (no padding: one output
    column) is a convolution along the height alone with the width folded into the
    channels: the transposed convolution then writes ``width x cin`` channels instead of
    sliding over zeros (musicnn's mid end: 7 x 561 kernels over 561 front-end maps)."""
    kh, kw, cin, cout = shape

    def rule(g: Any, sv: list, F: Any) -> list:
        W, xs = sv
        gm = merge(tf, g)                                     # F*N, Ho, 1, Cout
        sizes = tf.stack([tf.shape(gm)[0], xs[1], 1, kw * cin])
        dx = tf.raw_ops.Conv2DBackpropInput(
            input_sizes=sizes, filter=tf.reshape(W, [kh, 1, kw * cin, cout]), out_backprop=gm,
            strides=[1, 1, 1, 1], padding="VALID")
        return [split(tf, tf.reshape(dx, tf.stack([tf.shape(gm)[0], xs[1], kw, cin])), F)]

    return rule


def _compact_full_width_rule(tf: Any, shape: tuple) -> Any:
    """The compact rule (:func:`_compact_rule`) of a full-width convolution
    (:func:`_full_width_rule`): a depthwise convolution along the height whose channel
    multiplier is the kernel's ``width x cin`` values of each feature."""
    kh, kw, cin, _ = shape

    def rule(g: Any, sv: list, feats: Any) -> CellsMajor:
        W, xs = sv
        nf = tf.shape(feats)[0]
        x = tf.transpose(g, [1, 2, 3, 0])                          # N, Ho, 1, F
        x = tf.pad(x, [[0, 0], [kh - 1, kh - 1], [0, 0], [0, 0]])
        k = tf.reverse(tf.gather(W, feats, axis=3), [0])           # kh, kw, cin, F
        k = tf.reshape(tf.transpose(k, [0, 3, 1, 2]), tf.stack([kh, 1, nf, kw * cin]))
        y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=k, strides=[1, 1, 1, 1],
                                             padding="VALID")      # N, H, 1, F*kw*cin
        ys = tf.shape(y)
        y = tf.reshape(y, tf.stack([ys[0], ys[1], nf, kw, cin]))
        return CellsMajor(tf.transpose(y, [0, 1, 3, 2, 4]), tf)    # N, H, kw, F, cin

    return rule


@register("matmul")
def matmul(ctx: Context, step: Step) -> None:
    """``x @ W`` over the last two axes of ``x`` (a dense layer; at every frame, the input
    projection of a recurrent layer) with ``W`` fixed: the signal goes back through ``W``'s
    transpose (the attributes that transpose the operands: the declaration's ``transpose``)."""
    tf, g = ctx.tf, ctx.graph
    ta, tb = step.operation.params["transpose"]
    if step.var_inputs != [0] or g.attr(step.node, ta):
        unsupported(ctx, step)
    eq = "f...o,oi->f...i" if g.attr(step.node, tb) else "f...o,io->f...i"
    step.save = [saved_input(step, 1)]
    step.rule = lambda g, sv, F: [tf.einsum(eq, g, sv[0])]

