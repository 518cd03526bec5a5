"""What does each feature detect?  Descriptors, invariance scores and labels.

Choi et al. 2016 listened to 960 auralisations and asked for "a computational way for
analysis".  This package measures every feature instead.  Its rooms: :mod:`.references`
(onsets and notes of a track), :mod:`.context` (per-track precomputation),
:mod:`.descriptors` (per feature and track), :mod:`.labels` (rules with evidence),
:mod:`.study` (many tracks, invariance, :func:`analyse`).

Descriptors of one feature on one track (:func:`describe`)
---------------------------------------------------------
All computed from the feature's auralisation at the model's sample rate: its STFT is
``Y = M * X``, the feature's mask on the model's STFT grid (:func:`mirdeconv.auralisation.stft_domain_mask`,
with the same ``reading`` and ``sign`` as the sound) times the track's complex STFT ``X``;
its audio is ``istft(Y)``.

``output_energy``
    ``sum |Y|^2``: how loud the feature's output is (the weight when averaging over tracks).
``energy_ratio``
    How much of the track the feature passes: ``sum |M / max|M||^2 |X|^2 / sum |X|^2``
    (the mask scaled to a peak of 1), in [0, 1]; 1 = everything.
``percussive_share``, ``harmonic_share``
    The track is split by librosa's HPSS (median filtering, soft masks, margin 1):
    ``X = X_h + X_p``.  The auralisation is linear in ``X``, so it splits the same way,
    ``Y = M X_h + M X_p``; the shares are ``|M X_p|^2`` and ``|M X_h|^2`` over their sum.
``centroid_hz``, ``spread_hz``, ``low_share``, ``mid_share``, ``high_share``
    Energy-weighted mean frequency and standard deviation of the time-summed power
    spectrum ``sum_t |Y|^2``; shares of its energy below :data:`LOW_HZ` (200 Hz), between,
    and above :data:`HIGH_HZ` (2 kHz).
``onset_f``, ``onset_precision``, ``onset_recall``
    The auralisation's onsets (librosa's onset detector on the mel spectrogram of ``Y``)
    against the track's reference onsets, ``mir_eval.onset.f_measure`` with a 50 ms
    window.  NaN when the track has no reference onsets.
``attack_lift``
    The share of the auralisation's energy in the frames within 25 ms of a reference onset,
    divided by the same share of the track: 1 for a feature that passes everything, > 1
    for one that keeps attacks and drops what follows them (a drum loop is mostly attacks
    already, so its onset F-measure alone says little).
``pitch_profile``, ``pitch_correlation``
    The auralisation's pitch-class profile (librosa's chroma filterbank on its mean power
    spectrum, 4096-point frames; 12 values from C, sum 1) and its Pearson correlation with
    the duration-weighted pitch classes of the notes played (NaN when no notes are known).
``temporal_sparsity``
    Hoyer sparsity of the feature's activation over time, in [0, 1]: 0 = equally active
    everywhere, 1 = active in a single unit.
``sdr_percussive``, ``sdr_harmonic``
    The source-separation view: the SDR (dB) of the auralisation as an estimate of the
    track's percussive (``istft(X_p)``) or harmonic (``istft(X_h)``) component, as
    ``mir_eval.separation.bss_eval_sources`` defines it for one source (512-tap distortion
    filter).  Computed in closed form, sharing the reference's correlations over all
    features of a track (agrees with mir_eval to 1e-6 dB, tested; mir_eval itself costs
    0.1 s per call on a 30 s track).  NaN for a silent feature.
plus the engine's ``activation_max``, ``activation_mean``, ``fraction_active`` and ``dead``.

Over many tracks (:func:`analyse`)
----------------------------------
Each descriptor is averaged over the tracks, weighted by ``output_energy`` (tracks where
the feature is silent do not count), ignoring tracks where it is undefined.

Invariance (:func:`invariance`): on the probe set's chord clips (:mod:`mirdeconv.probes`),
a feature's mean activation per clip ``a[key, instrument, chord_set]``.  The invariance to
one factor is ``1 - V_within / V_total``: ``V_within`` is the variance across that factor's
levels with the other two factors fixed (averaged over those cells), ``V_total`` the variance
over all clips.  1 = the activation does not change with the factor; 0 = all of its
variation comes from it.  NaN for a feature that never varies.

Labels (:func:`label`): rules on the descriptors with the thresholds in :data:`THRESHOLDS`,
each with its evidence, e.g. ``"onset detector: F = 0.83"``, ``"low band / bass: 78 % of
energy below 200 Hz"``, ``"harmonic: 91 % of energy in the harmonic part, key-invariant
(0.93)"``, ``"texture: ..."``.
"""

from .context import (
    ATTACK_WINDOW,
    CHROMA_FFT,
    HIGH_HZ,
    LOW_HZ,
    ONSET_WINDOW,
    SDR_FILTER,
    TrackContext,
    fast_sdr,
)
from .descriptors import DESCRIPTORS, describe, describe_masks
from .labels import THRESHOLDS, add_labels, label
from .references import Reference
from .study import (
    INVARIANCES,
    AnalysisResult,
    aggregate,
    analyse,
    invariance,
    probe_invariance,
    typical_features,
)

__all__ = [
    "LOW_HZ", "HIGH_HZ", "ONSET_WINDOW", "SDR_FILTER", "ATTACK_WINDOW", "CHROMA_FFT",
    "THRESHOLDS", "DESCRIPTORS", "INVARIANCES", "Reference", "TrackContext", "describe",
    "describe_masks", "invariance", "probe_invariance", "label", "add_labels", "aggregate",
    "analyse", "AnalysisResult", "fast_sdr", "typical_features",
]
