"""Explanations of a model's outputs: which parts of a track made it say a tag.

* :mod:`.targets`: the explained output (:class:`ExplainedOutput`: logit or probability)
  and the tags' classes;
* :mod:`.methods`: the attribution methods, rows of one table (:data:`ATTRIBUTIONS`);
* :mod:`.options`: :class:`ExplainOptions`, every setting of an explanation and its default;
* :mod:`.api`: :func:`explain` and :class:`Explanation`, patches averaged as predictions are;
* :mod:`.sound`: the explanation and its complement made audible;
* :mod:`.measures`: the inputs masked in and out fed back (L-MAC's figures, deletion
  and insertion against a random order);
* :mod:`.files`: an explanation written to a folder.
"""

from ..errors import renamed
from .api import Explanation, explain
from .measures import FIGURES, Faithfulness, audio_faithfulness, faithfulness
from .methods import ATTRIBUTIONS, Attribution, Settings
from .options import DEFAULT_METHOD, ExplainOptions
from .sound import EXPLANATION_SOUND, explanation_sound, unit_masks
from .targets import OUTPUTS, RENAMED, ExplainedOutput, explained_output, tag_indices

__all__ = ["explain", "Explanation", "ExplainOptions", "DEFAULT_METHOD", "faithfulness",
           "audio_faithfulness", "Faithfulness",
           "FIGURES", "ATTRIBUTIONS", "Attribution", "Settings", "OUTPUTS", "ExplainedOutput",
           "explained_output", "tag_indices",
           "explanation_sound", "unit_masks", "EXPLANATION_SOUND"]

#: ``output_target`` and ``OutputTarget``: deprecated names of ``explained_output`` and
#: ``ExplainedOutput``.
__getattr__ = renamed(__name__, RENAMED, globals())
