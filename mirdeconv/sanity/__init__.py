"""Sanity checks: do the explanations and the auralisations depend on what the model learned?

* :mod:`.randomise`: a model's learned layers, and the model with some re-initialised;
* :mod:`.similarity`: Spearman's rank correlation and SSIM of two maps;
* :mod:`.activity`: each feature's response to a track;
* :mod:`.cascade`: cascading model randomisation (Adebayo et al., NeurIPS 2018) of the class
  explanations and of the deconvolution of feature maps, with a verdict per method;
* :mod:`.feedback`: a feature's auralisation fed back: does it re-excite that feature
  more than the layer's others?
* :mod:`.report`: all of it on one track, as one report written to a folder and cached per
  model.
"""

from .cascade import (
    DECONVOLUTION_METHODS,
    EXPLANATION_METHODS,
    PASS_BELOW,
    Cascade,
    deconvolution_cascade,
    explanation_cascade,
)
from .feedback import Selectivity, selectivity
from .randomise import ParameterLayer, parameter_layers, randomised
from .report import SanityReport, cached_sanity_check, load_report, sanity_check, save_report

__all__ = ["Cascade", "explanation_cascade", "deconvolution_cascade", "PASS_BELOW",
           "EXPLANATION_METHODS", "DECONVOLUTION_METHODS", "ParameterLayer", "parameter_layers",
           "randomised", "Selectivity", "selectivity", "SanityReport", "sanity_check",
           "save_report", "load_report", "cached_sanity_check"]
