"""The ``atlas`` command: what every feature and every tag responds to across a collection."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InvalidOptionError
from .common import model_args, model_options, number, plural, print_problems

__all__ = ["cmd_atlas", "atlas_args"]


def cmd_atlas(args: argparse.Namespace) -> int:
    from ..atlas import AtlasSettings, build_atlas, collect
    from ..atlas.run import check_scheduler, exit_code
    from ..options import environment
    from ..store import prepare_folder

    if args.check:
        return _check(args.check)
    if not (args.model and args.source and args.out):
        raise InvalidOptionError("give MODEL SOURCE --out ATLAS (or --check ATLAS)")
    check_scheduler(args.scheduler or environment().dask_scheduler)   # before any work
    if args.source != "probes":
        collect(args.source)                       # a source with no audio, refused now
    if args.source == "probes":                    # the probe set, with its annotations
        from ..probes import probe_set, write_probes

        write_probes(probe_set(), prepare_folder(args.out) / "probes", annotations="jams")
        args.source = str(prepare_folder(args.out) / "probes")
    out = prepare_folder(args.out).resolve()
    source = Path(args.source).resolve()
    tracks = [t for t in collect(source)           # refused before any work; never the atlas'
              if source.is_relative_to(out) or not Path(t.path).is_relative_to(out)]  # files
    model = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model
    layers = tuple(x for x in (args.layers or "").split(",") if x)
    settings = AtlasSettings(model=model, layers=layers, k=args.top_k, excerpt=args.excerpt,
                             tags=not args.no_tags,
                             model_options=tuple(sorted(model_options(args).items())))
    table = build_atlas(tracks, settings, out=args.out, scheduler=args.scheduler,
                        n_workers=args.workers, progress=True)
    n_units = table.groupby(["kind", "layer", "unit"]).ngroups
    failed = int((table["error"] != "").sum()) if "error" in table else 0
    bad = table.attrs.get("failures", [])
    print(f"{plural(len(tracks) - len(bad), 'track')}: {n_units} features and tags, "
          f"{len(table)} winners -> {args.out}/atlas.parquet"
          + (f"; {failed} without a deconvolution" if failed else ""))
    for f in bad:
        print(f"  failed: {f['track']}: {f['error']}", file=sys.stderr)
    code = exit_code(len(tracks) - len(bad), len(bad))
    if code:
        print(f"mirdeconv: {'no track could be read' if code == 2 else plural(len(bad), 'track')} "
              f"(exit code {code}; see {args.out}/summary.json)", file=sys.stderr)
    return code


def _check(folder: str) -> int:
    from ..atlas import check_atlas

    bad = print_problems(check_atlas(folder))
    print(f"{folder}: " + ("every file the atlas lists is there" if not bad
                           else f"{bad} problem{'s' if bad > 1 else ''}"))
    return 1 if bad else 0


def atlas_args(p: argparse.ArgumentParser) -> None:
    model_args(p, optional=True)
    p.add_argument("source", nargs="?", help="a folder of audio (recursively; NAME.jams beside a "
                                             "file annotates it), a .csv/.parquet list with a "
                                             "'path' column, or 'probes' (the probe set and "
                                             "its annotations, written into the atlas)")
    p.add_argument("--check", metavar="ATLAS", help="check an atlas folder against its table")
    p.add_argument("--layers", help="comma-separated feature layers (default: all)")
    p.add_argument("--top-k", type=number("top_k"), default=9,
                   help="winners per feature and tag (default 9)")
    p.add_argument("--excerpt", type=number("excerpt"), default=3.0,
                   help="seconds per excerpt, and between two winners of a unit (default 3)")
    p.add_argument("--no-tags", action="store_true", help="only the features")
    p.add_argument("--scheduler",
                   help="a Dask scheduler's address (tcp://HOST:8786; also DASK_SCHEDULER_ADDRESS); "
                        "default: a local cluster, one worker process per core; 'synchronous': "
                        "this process")
    p.add_argument("--workers", type=number("workers"), help="the local cluster's worker processes")
    p.add_argument("--out", "-o", help="the atlas folder")
