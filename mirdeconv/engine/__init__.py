"""The deconvolution engine: deconvnet, guided backprop and saliency on frozen graphs.

Rooms, from the public call down:

* :mod:`.api`: :func:`deconvolve` and :class:`DeconvResult`; :func:`deconvolve_request`;
* :mod:`.request`: a :class:`Request`, one deconvolution resolved once (layer, features,
  track, options, memory plan), built by :func:`resolve_request`;
* :mod:`.patches`: whole tracks or patches, overlap-add; :mod:`.stats`: activation statistics;
* :mod:`.memory`: the memory plan (chunks of a long track, batches of patches) under the
  budget; :mod:`.chunks`: chunks extended by the receptive field, stitched;
* :mod:`.cache`: compiled programs per model (weakly referenced);
* :mod:`.program`: one graph cut compiled into backward steps, forward once, backward in chunks;
* :mod:`.windows`: ``target="max"`` from windows of the track around each strongest unit;
* :mod:`.graphrun`: importing a graph for its forward pass (slow convolutions regrouped);
* :mod:`.fused`: the fast paths (one channel per feature below the seed; the fused first layer,
  in the ways of :mod:`.cells` and :mod:`.sparse`, which share :mod:`.switches`);
* :mod:`.table` and :mod:`.rules`: one backward rule per rule family, in one table (each
  operation's family is in its declaration, :mod:`mirdeconv.graph.operations`);
* :mod:`.step`, :mod:`.seeds`: what rules work on;
* :mod:`.forward`: the graph's plain forward pass (predictions).

The methods are rows of :data:`mirdeconv.options.METHODS`.  The result lives in the model
input's domain (time x bands), one mask per feature.
"""

from .api import DeconvResult, check_model, deconvolve, deconvolve_request, memory_plan, track_input
from .cache import cached_count, compiled, compiled_tensor, forget
from .forward import run_graph
from .memory import MemoryPlan, read_block, release_pages, spill_track
from .patches import Patching, model_input
from .program import Program
from .request import Request, Selection, deconv_options, resolve_request, selection
from .table import FAMILIES, RULES, register

__all__ = ["deconvolve", "deconvolve_request", "Request", "resolve_request", "Selection", "selection",
           "deconv_options",
           "DeconvResult", "check_model", "memory_plan", "track_input", "MemoryPlan",
           "release_pages", "read_block", "spill_track", "model_input", "Patching", "run_graph",
           "compiled", "compiled_tensor", "forget", "cached_count", "Program", "RULES", "FAMILIES",
           "register"]
