"""The atlas: what every feature and every tag responds to across a music collection.

* :mod:`.sources`: the collection's tracks;
* :mod:`.summary`: one track's strongest moments per feature and per tag;
* :mod:`.topk`: the top-k table and its merge (associative: reduced in a tree);
* :mod:`.winners`: the winners' excerpts, deconvolutions and auralisations;
* :mod:`.dissect`: labels from annotations (Network Dissection in time);
* :mod:`.run`: the Dask graph (a task per track, a tree of merges), the atlas written and read.
"""

from .run import AtlasSettings, build_atlas, check_atlas, load, write_atlas
from .sources import Track, collect

__all__ = ["AtlasSettings", "build_atlas", "check_atlas", "load", "write_atlas", "Track", "collect"]
