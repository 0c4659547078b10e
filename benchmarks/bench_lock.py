"""The surrogate lock, measured: why it searches, what that buys, what it costs.

    python benchmarks/bench_lock.py [--clips a.mp4 ...] [--candidates 24]

Per person of the clips (pass 1 of the default mode finds them and their best frames), the first
``--candidates`` random surrogate candidates (the search's first draws) are rendered into the
person's best frame, their second-best and a held-out frame (their worst kept view) and described
by dlib. Prints per person and overall: how far candidates and the mean face land from the
subject, their spread, the first over τ against the farthest of 6 / 12 / all (best frame, and the
same choice in the held-out frame), the farthest of all by the worst of the two best frames (as
the lock judges); then the lock itself (random draws, then climbing rounds) at the standard and
low presets: who locks, the verified distance, the held-out one, candidates tried and seconds.
Also how far one output moves between two frames, how much aligning outputs on dlib's own HOG
detection instead of the landmarks' box changes distances, how much a Python thread slows down
beside dlib's network in-process and in the worker process, and the import time of a
default-mode run. Writes benchmarks/out/lock.json."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import VIDEOS, public_argv, shared_clip, write_json

from deidstream.config import (
    PRIVACY_PRESETS,
    GeneratorConfig,
    LockConfig,
    PipelineConfig,
)
from deidstream.engine.generator.face_render import (
    Surrogate,
    make_renderer,
)
from deidstream.engine.lock import SurrogateLocker, face_chip
from deidstream.evaluation.judge import DlibRecognizer
from deidstream.geometry.boxes import iou_matrix
from deidstream.pipelines.twopass import Analysis
from deidstream.stream.source import FileSource
from deidstream.stream.threads import StageClock
from deidstream.tracking.detector import MediaPipeDetector
from deidstream.types import Frame

DEFAULT_CLIPS = ["talking_head_1.mp4", "two_faces_selfie_portrait.mp4", "hands_occlusion_expressions.mp4",
                 "talking_head_2.mp4", "portrait_s18.mp4"]
KEY = b"deidstream-benchmark"


def analysed(clip: Path, on_frame: Callable[[Frame], None] | None = None) -> Analysis:
    """Pass 1 of the default mode over the clip (``on_frame`` sees every decoded frame)."""
    config = PipelineConfig()
    with MediaPipeDetector(config.detector) as detector:
        analysis = Analysis(detector, config, StageClock())
        try:
            with FileSource(clip) as source:
                for item in source.items():
                    if isinstance(item, Frame):
                        if on_frame is not None:
                            on_frame(item)
                        analysis.embed(analysis.track(analysis.detect(item)))
            analysis.finish()
        finally:
            analysis.close()
            analysis.recognizer.close()
    return analysis


def people_of(clip: Path, rec: DlibRecognizer) -> list[tuple[np.ndarray, list]]:
    """(embedding, best views) of every person with an embedding, from the analysis pass."""
    analysis = analysed(clip)
    out = []
    to_identity = analysis.book.resolve()
    for ident in sorted(set(to_identity.values())):
        if not analysis.book.has_embedding(ident):
            continue
        views = analysis.book.person(ident).views
        if len(views) >= 2:
            out.append((analysis.book.embedding(ident), views))
    return out


def hog_chip(rec: DlibRecognizer, image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The chip aligned as ``deidstream evaluate`` would: dlib's HOG detection over the face."""
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    box = np.array([lo[0], lo[1] + 0.12 * (hi[1] - lo[1]), hi[0], hi[1]], np.float32)
    found = [f for f in rec.detect(image) if iou_matrix(f.box[None], box[None])[0, 0] >= 0.3]
    return rec.chips(image, found[:1])[0] if found else face_chip(rec, image, points)


def person_row(locker: SurrogateLocker, rec: DlibRecognizer, embedding: np.ndarray, views: list, n: int,
               label: int) -> dict:
    renderer = locker.renderer
    donors = locker._matched_donors(locker.attributes(embedding)[0], locker.skin_ita(views))
    candidates = [locker._candidate_of(label, a, donors) for a in range(n)]
    best, held = views[0], views[-1]
    d_best = np.linalg.norm(locker._describe_in_place(candidates, best) - embedding, axis=1)
    d_held = np.linalg.norm(locker._describe_in_place(candidates, held) - embedding, axis=1)
    d_two = np.minimum(d_best, np.linalg.norm(locker._describe_in_place(candidates, views[1]) - embedding, axis=1))
    mean_face = Surrogate.of(renderer.model, renderer.model.mean_identity())
    d_mean = float(np.linalg.norm(locker._describe_in_place([mean_face], best)[0] - embedding))
    over = np.flatnonzero(d_best >= locker.config.tau)
    row = {"candidates": n, "mean_face": round(d_mean, 3), "candidate_mean": round(float(d_best.mean()), 3),
           "candidate_min_max": [round(float(d_best.min()), 3), round(float(d_best.max()), 3)],
           "first_over_tau": round(float(d_best[over[0]]), 3) if len(over) else None}
    for k in (6, 12, n):
        i = int(np.argmax(d_best[:k]))
        row[f"farthest_of_{k}"] = [round(float(d_best[i]), 3), round(float(d_held[i]), 3)]
    # the random draws judged as the lock judges: the worst of the two best views
    i = int(np.argmax(d_two))
    row[f"random_{n}_two_views"] = [round(float(d_two[i]), 3), round(float(d_held[i]), 3)]
    shape = locker._inverter.person_shape([best])
    hog, box = [], []
    for c in candidates[:6]:
        image = best.image.copy()
        renderer.paint(image, best.points, shape, c)
        hog.append(hog_chip(rec, image, best.points))
        box.append(face_chip(rec, image, best.points))
    d_hog = np.linalg.norm(rec.describe_chips(hog) - embedding, axis=1)
    d_box = np.linalg.norm(rec.describe_chips(box) - embedding, axis=1)
    row["hog_vs_box_alignment_max_diff"] = round(float(np.abs(d_hog - d_box).max()), 3)
    outputs_best = locker._describe_in_place(candidates, best)
    outputs_held = locker._describe_in_place(candidates, held)
    row["output_moves_between_frames_median"] = round(float(np.median(np.linalg.norm(outputs_best - outputs_held,
                                                                                     axis=1))), 3)
    # the search as the default mode runs it (random draws, then climbing rounds), at each preset
    for preset in ("standard", "low"):
        fresh = SurrogateLocker(renderer.model, renderer, rec, KEY, LockConfig(tau=PRIVACY_PRESETS[preset]))
        t0 = time.perf_counter()
        lock = fresh.lock(label, embedding, views)
        seconds = time.perf_counter() - t0
        held_d = (float(np.linalg.norm(fresh._describe_in_place([lock.surrogate], held)[0] - embedding))
                  if lock.locked else None)
        row[f"lock_{preset}"] = {"tau": PRIVACY_PRESETS[preset], "locked": lock.locked,
                                 "verified": lock.distance and round(lock.distance, 3),
                                 "held_out": held_d and round(held_d, 3),
                                 "tried": lock.attempts, "seconds": round(seconds, 2)}
    return row


def lock_summary(locks: list[dict]) -> dict:
    done = [k for k in locks if k["locked"]]
    return {"tau": locks[0]["tau"], "locked": f"{len(done)}/{len(locks)}",
            "verified_mean_locked": round(float(np.mean([k["verified"] for k in done])), 3) if done else None,
            "held_out_mean_locked": round(float(np.mean([k["held_out"] for k in done])), 3) if done else None,
            "tried_mean": round(float(np.mean([k["tried"] for k in locks])), 1),
            "seconds_median": round(float(np.median([k["seconds"] for k in locks])), 2)}


def gil_stall(seconds: float = 2.0) -> dict:
    """Loop iterations of a Python thread per second alone, beside dlib in-process, beside the worker."""
    chip = np.random.default_rng(0).integers(0, 256, (150, 150, 3), dtype=np.uint8)

    def spin(out: list) -> None:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += 1
        out.append(n / seconds)

    def beside(rec: DlibRecognizer | None) -> float:
        out: list = []
        thread = threading.Thread(target=spin, args=(out,))
        thread.start()
        while thread.is_alive():
            if rec is not None:
                rec.describe_chips([chip])
            else:
                time.sleep(0.01)
        thread.join()
        return out[0]

    local, remote = DlibRecognizer(), DlibRecognizer(workers=1)
    remote.describe_chips([chip])
    alone, with_local, with_worker = beside(None), beside(local), beside(remote)
    remote.close()
    return {"alone_per_s": round(alone), "slowdown_in_process": round(alone / with_local, 1),
            "slowdown_with_worker": round(alone / with_worker, 2)}


def import_seconds() -> float:
    t0 = time.perf_counter()
    modules = "deidstream.cli, deidstream.pipelines.twopass, deidstream.pipelines.live_surrogate"
    subprocess.run([sys.executable, "-c", f"import {modules}"], check=True)
    return round(time.perf_counter() - t0, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*")
    ap.add_argument("--candidates", type=int, default=24)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "lock.json")
    args = ap.parse_args()
    clips = [shared_clip(c) for c in args.clips] if args.clips else [VIDEOS / c for c in DEFAULT_CLIPS]
    result: dict = {"argv": public_argv(), "gil": gil_stall(), "import_s": import_seconds(), "people": []}
    print(f"GIL: a Python thread runs {result['gil']['slowdown_in_process']}x slower beside dlib in-process, "
          f"{result['gil']['slowdown_with_worker']}x beside the worker process; imports {result['import_s']} s")
    rec = DlibRecognizer(workers=2)
    renderer = make_renderer(GeneratorConfig())
    locker = SurrogateLocker(renderer.model, renderer, rec, KEY, LockConfig(tau=GeneratorConfig().tau))
    for clip in clips:
        for label, (embedding, views) in enumerate(people_of(clip, rec)):
            row = {"clip": clip.name, **person_row(locker, rec, embedding, views, args.candidates, label)}
            result["people"].append(row)
            print(json.dumps(row), flush=True)
    rec.close()
    rows = result["people"]
    if rows:
        n = args.candidates
        result["summary"] = {
            "people": len(rows),
            "mean_face": round(float(np.mean([r["mean_face"] for r in rows])), 3),
            "candidate_mean": round(float(np.mean([r["candidate_mean"] for r in rows])), 3),
            "candidate_range": [min(r["candidate_min_max"][0] for r in rows),
                                max(r["candidate_min_max"][1] for r in rows)],
            "first_over_tau": round(float(np.mean([r["first_over_tau"] for r in rows if r["first_over_tau"]])), 3),
            **{f"farthest_of_{k}_best_heldout": [round(float(np.mean([r[f"farthest_of_{k}"][j] for r in rows])), 3)
                                                 for j in (0, 1)] for k in (6, 12, n)},
            "output_moves_between_frames_median": round(float(np.median(
                [r["output_moves_between_frames_median"] for r in rows])), 3),
            "hog_vs_box_alignment_max_diff": max(r["hog_vs_box_alignment_max_diff"] for r in rows),
            f"random_{n}_two_views_verified_heldout": [
                round(float(np.mean([r[f"random_{n}_two_views"][j] for r in rows])), 3) for j in (0, 1)],
            **{f"lock_{p}": lock_summary([r[f"lock_{p}"] for r in rows]) for p in ("standard", "low")},
        }
        print("summary " + json.dumps(result["summary"]))
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
