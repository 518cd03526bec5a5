"""The atlas on Dask: tracks per minute in one process and on local clusters of the same
two cores, side by side in one run, and what an atlas of MTG-Jamendo would cost.

Collection: the four songs of Debian's fretsonfire-songs-muldjord cut into one-minute
tracks (written to a temporary folder; 12 tracks).  Model ``mtt-musicnn``, layer
``midend_3``, k = 9, its 50 tags: the first pass (each track's summary and the tree of
merges), which is what grows with the collection.  Each cluster runs one warm-up job first
(its workers open the model), then the timed one.  Configurations:

* one process (Dask's synchronous scheduler; TensorFlow's own thread pool);
* 1 worker x 1 thread, 1 worker x 2 threads, 2 workers x 1 thread (``LocalCluster``; each
  worker's TensorFlow thread pools sized to its threads, ``mirdeconv.atlas.run.worker_env``).

Scale-out efficiency: the 2-worker throughput over twice the 1 x 1 one.  The per-track
cost (worker-seconds per minute of audio) gives the cost of MTG-Jamendo's 55,000 tracks on
N such workers, on paper (the average track length is an assumption, printed).

The last line is for scripts: ``atlas: N tracks/min on 2 workers, scale-out efficiency E``.

Run: python benchmarks/atlas_scale.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import soundfile as sf

from mirdeconv.atlas import AtlasSettings, build_atlas, collect
from mirdeconv.atlas.run import worker_env
from mirdeconv.audio import load

SONGS = Path("/usr/share/games/fretsonfire/data/songs/muldjord")
SETTINGS = AtlasSettings(model="mtt-musicnn", layers=("midend_3",), k=9, excerpt=3.0)
JAMENDO_TRACKS = 55_000
JAMENDO_MINUTES = 4.0          # an assumed average length, minutes per track


def collection(folder: Path, n: int = 12) -> list:
    """``n`` one-minute tracks cut from the four songs."""
    songs = sorted(SONGS.glob("*/song.ogg"))
    made = 0
    while made < n:
        for s in songs:
            y, sr = load(s)
            minute = made // len(songs)
            piece = y[minute * 60 * sr:(minute + 1) * 60 * sr]
            sf.write(folder / f"{s.parent.name}_{minute}.wav", piece, sr)
            made += 1
            if made == n:
                break
    return collect(folder)


def timed(tracks: list, **kw) -> float:
    t0 = time.perf_counter()
    build_atlas(tracks, SETTINGS, **kw)
    return time.perf_counter() - t0


def main() -> None:
    from distributed import LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        tracks = collection(Path(tmp))
        n = len(tracks)
        rates = {}
        timed(tracks[:1], scheduler="synchronous")                       # opens the model
        rates["one process"] = n / timed(tracks, scheduler="synchronous") * 60
        for workers, threads in ((1, 1), (1, 2), (2, 1)):
            with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                              dashboard_address=":0",
                              env=worker_env(workers, cores=workers * threads)) as cluster:
                addr = cluster.scheduler_address
                timed(tracks[:workers], scheduler=addr)                 # every worker warm
                rates[f"{workers} worker x {threads} thread"] = n / timed(tracks, scheduler=addr) * 60
    print(f"{n} one-minute tracks, mtt-musicnn midend_3 + 50 tags, k = 9\n")
    print("| configuration | tracks per minute |")
    print("|---|---:|")
    for name, r in rates.items():
        print(f"| {name} | {r:.1f} |")
    single, two = rates["1 worker x 1 thread"], rates["2 worker x 1 thread"]
    eff = two / (2 * single)
    per_track = 60.0 / single                     # worker-seconds per minute of audio
    print(f"\nscale-out efficiency (2 workers / 2 x 1 worker): {eff:.2f}")
    print(f"per minute of audio: {per_track:.2f} worker-seconds (1 worker x 1 thread)")
    total = JAMENDO_TRACKS * JAMENDO_MINUTES * per_track
    for w in (2, 16, 64):
        print(f"MTG-Jamendo ({JAMENDO_TRACKS} tracks x {JAMENDO_MINUTES:g} min assumed), first "
              f"pass on {w} such workers: {total / w / 3600 / max(eff, 1e-9) ** (w > 1):.1f} h")
    print(f"\natlas: {two:.1f} tracks/min on 2 workers, scale-out efficiency {eff:.2f}")


if __name__ == "__main__":
    main()
