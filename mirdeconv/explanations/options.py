"""How a class explanation is made: :class:`ExplainOptions`, beside
:class:`mirdeconv.options.DeconvOptions` and :class:`mirdeconv.options.SoundOptions`.

Its choices are the tables of this room (:data:`.methods.ATTRIBUTIONS`,
:data:`.targets.OUTPUTS`), its numbers are checked by :data:`mirdeconv.options.NUMBERS`, and
each field has one default, here.  The command line's flags (``mirdeconv explain --help``) and
the app's pickers are generated from its fields (:func:`mirdeconv.options.choices`), and what
they say about each setting is read from the method rows (which methods take a layer, which
read ``steps`` or ``copies``): a new method is one row of :data:`.methods.ATTRIBUTIONS`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..options import NUMBERS, check_choice, check_number
from .methods import ATTRIBUTIONS, Attribution, Settings
from .targets import OUTPUTS

__all__ = ["ExplainOptions", "DEFAULT_METHOD"]


def _users(setting: str) -> str:
    return ", ".join(name for name, row in ATTRIBUTIONS.items() if setting in row.uses) or "none"


def _number_help(setting: str, text: str) -> Any:
    return lambda: f"{text} (read by: {_users(setting)}; {NUMBERS[setting].describe()})"


def _method_help() -> str:
    def facts(row: Attribution) -> str:
        said = (["takes a layer"] if row.layer else []) + (
            [f"reads {', '.join(row.uses)}"] if row.uses else []) + (
            ["reports its completeness"] if row.completeness else [])
        return f" ({'; '.join(said)})" if said else ""

    return "; ".join(f"{name}: {row.description}{facts(row)}" for name, row in ATTRIBUTIONS.items())


def _layer_help() -> str:
    takers = [name for name, row in ATTRIBUTIONS.items() if row.layer]
    return (f"the layer of {', '.join(takers) or 'no method'} (see `mirdeconv layers`); the "
            "other methods take none and ignore it")


@dataclass(frozen=True)
class ExplainOptions:
    """How a class explanation is made (:func:`mirdeconv.explain`).

    Parameters
    ----------
    method : str
        A row of :data:`mirdeconv.explanations.ATTRIBUTIONS` (default ``"saliency"``).
    output : {"logit", "probability"}
        What is explained (:data:`mirdeconv.explanations.OUTPUTS`): the input of the output's
        sigmoid or softmax, or the probability itself.
    steps : int
        Points on the path from silence (the methods whose row ``uses`` ``"steps"``:
        integrated gradients).
    copies : int
        Noisy copies of each patch (rows that use ``"copies"``: SmoothGrad); formerly
        ``samples``.
    noise : float
        The copies' noise, a fraction of each patch's value range.
    seed : int
        The noise's random seed.
    layer : str, int or None
        The layer of the methods whose row takes one (Grad-CAM); ignored (kept as None) for
        the others.

    Raises
    ------
    InvalidOptionError
        A method or output outside its table, a number outside its bounds.

    Notes
    -----
    The numbers' defaults are :class:`mirdeconv.explanations.Settings`'s (written once).
    """

    method: str = field(default="saliency", metadata={
        "choices": ATTRIBUTIONS, "label": "Method", "short": "-m", "help": _method_help})
    output: str = field(default="logit", metadata={
        "choices": OUTPUTS, "label": "Explain its", "flag": "--explained-output",
        "aliases": ("--target",)})
    steps: int = field(default=Settings.steps, metadata={
        "label": "Steps", "number": "steps",
        "help": _number_help("steps", "points on the path from digital silence to the track")})
    copies: int = field(default=Settings.copies, metadata={
        "label": "Copies", "number": "copies", "aliases": ("--samples",),
        "help": _number_help("copies", "noisy copies of each patch")})
    noise: float = field(default=Settings.noise, metadata={
        "label": "Noise", "number": "noise",
        "help": _number_help("noise", "the copies' noise, a fraction of each patch's range")})
    seed: int = field(default=Settings.seed, metadata={
        "label": "Seed", "number": "seed",
        "help": _number_help("seed", "the copies' random seed")})
    layer: str | int | None = field(default=None, metadata={
        "label": "Layer", "short": "-l", "kind": "text", "help": _layer_help})

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if "choices" in f.metadata:
                check_choice(f.name, getattr(self, f.name), f.metadata["choices"])
            elif "number" in f.metadata:
                check_number(f.metadata["number"], getattr(self, f.name), f.name)
        if not self.row.layer and self.layer is not None:
            object.__setattr__(self, "layer", None)          # this method takes no layer

    @property
    def row(self) -> Attribution:
        """The method's row of :data:`mirdeconv.explanations.ATTRIBUTIONS`."""
        return ATTRIBUTIONS[self.method]

    @property
    def settings(self) -> Settings:
        """The numbers the method's row reads."""
        return Settings(self.steps, self.copies, self.noise, self.seed)

    def key(self) -> dict[str, Any]:
        """What changes the result: the method, the output and the settings its row uses
        (and its layer, if it takes one)."""
        out = {"method": self.method, "output": self.output}
        out.update({k: getattr(self, k) for k in self.row.uses})
        if self.row.layer:
            out["layer"] = self.layer
        return out

    def replace(self, **changes: Any) -> ExplainOptions:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)


#: The default method (the field's default, written once above).
DEFAULT_METHOD: str = ExplainOptions.method
