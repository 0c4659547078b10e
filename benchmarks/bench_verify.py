"""Does verifying a surrogate in more views keep it safe in the frames it was not verified in?

    python benchmarks/bench_verify.py [--clips a.mp4 ...] [--candidates 24] [--held-out 8]

A live person whose surrogate search failed is searched again with new candidates, each verified
in all three of their best views instead of two, and only where the face is at least 100 px wide
(``deidstream.pipelines.live_surrogate``). This measures what that buys. Per person of the clips (pass 1 of the
default mode finds them, their three best views and their landmarks in every frame), the first
``--candidates`` candidates are rendered into the three best views and into ``--held-out`` other
frames spread over the clip, and described by dlib. Of the candidates a search would accept (at
least τ from the subject in the first two views, or in all three), it reports how many there are,
their distance in the held-out frames (mean, worst) and how many are re-identified (< 0.6) in
some held-out frame: the leak a verification lets through. Writes benchmarks/out/verify.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_lock import analysed
from benchlib import VIDEOS, public_argv, shared_clip, write_json

from deidstream.config import (
    GeneratorConfig,
    LockConfig,
)
from deidstream.engine.generator.face_render import make_renderer
from deidstream.engine.lock import SurrogateLocker
from deidstream.evaluation.judge import SAME_PERSON, DlibRecognizer
from deidstream.types import FaceView

DEFAULT_CLIPS = ["talking_head_1.mp4", "two_faces_selfie_portrait.mp4", "hands_occlusion_expressions.mp4",
                 "talking_head_2.mp4", "portrait_s18.mp4", "stage_multi_person_cuts.mp4"]
KEY = b"deidstream-benchmark-verify"


def people_with_frames(clip: Path, held_out: int) -> list[dict]:
    """Per person with an embedding: the embedding, the three best views and ``held_out`` other views."""
    images: dict[int, np.ndarray] = {}
    analysis = analysed(clip, lambda frame: images.__setitem__(frame.index, frame.image))
    to_identity = analysis.book.resolve()
    out = []
    for ident in sorted(set(to_identity.values())):
        tracks = {t for t, i in to_identity.items() if i == ident}
        if not analysis.book.has_embedding(ident):
            continue
        best = analysis.book.person(ident).views
        if len(best) < 3:
            continue
        seen = [(ff.index, p) for ff in analysis.frames for tid, p in zip(
            ff.faces.track_id if ff.faces.track_id is not None else [], ff.landmarks)
            if int(tid) in tracks and p is not None]
        picks = np.linspace(0, len(seen) - 1, min(held_out, len(seen))).round().astype(int)
        others = [FaceView(images[seen[k][0]], seen[k][1]) for k in sorted(set(picks.tolist()))]
        width = float(np.median([np.ptp(v.points[:, 0]) for v in best[:3]]))
        out.append({"embedding": analysis.book.embedding(ident), "best": best[:3],
                    "held_out": others, "face_px": round(width, 1)})
    return out


def person_row(locker: SurrogateLocker, person: dict, n: int, label: int) -> dict:
    embedding = person["embedding"]
    donors = locker._matched_donors(locker.attributes(embedding)[0], locker.skin_ita(person["best"]))
    candidates = [locker._candidate_of(label, a, donors) for a in range(n)]
    d_views = np.stack([np.linalg.norm(locker._describe_in_place(candidates, v) - embedding, axis=1)
                        for v in person["best"]])  # (3, n)
    d_held = np.stack([np.linalg.norm(locker._describe_in_place(candidates, v) - embedding, axis=1)
                       for v in person["held_out"]])  # (h, n)
    tau = locker.config.tau
    row: dict = {"face_px": person["face_px"], "candidates": n, "held_out_frames": len(person["held_out"])}
    for views in (1, 2, 3):
        accepted = np.flatnonzero((d_views[:views] >= tau).all(axis=0))
        worst = d_held[:, accepted].min(axis=0) if len(accepted) else np.zeros(0)
        row[f"verified_in_{views}"] = {
            "accepted": len(accepted),
            "held_out_mean": round(float(d_held[:, accepted].mean()), 3) if len(accepted) else None,
            "held_out_worst": round(float(worst.min()), 3) if len(accepted) else None,
            "reidentified_somewhere": int((worst < SAME_PERSON).sum()),
            "below_tau_somewhere": int((worst < tau).sum()),
        }
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*")
    ap.add_argument("--candidates", type=int, default=24)
    ap.add_argument("--held-out", type=int, default=8)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "verify.json")
    args = ap.parse_args()
    clips = [shared_clip(c) for c in args.clips] if args.clips else [VIDEOS / c for c in DEFAULT_CLIPS]
    missing = [c.name for c in clips if not c.exists()]
    if missing:
        print(f"missing clips (is ../shared/data present?): {missing}", file=sys.stderr)
        return 2
    rec = DlibRecognizer(workers=2)
    renderer = make_renderer(GeneratorConfig())
    locker = SurrogateLocker(renderer.model, renderer, rec, KEY, LockConfig(tau=GeneratorConfig().tau))
    rows = []
    try:
        for clip in clips:
            for label, person in enumerate(people_with_frames(clip, args.held_out)):
                row = {"clip": clip.name, **person_row(locker, person, args.candidates, label)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        rec.close()
    summary = {}
    for name, keep in (("all", lambda r: True), ("faces_100px_or_wider", lambda r: r["face_px"] >= 100),
                       ("faces_under_100px", lambda r: r["face_px"] < 100)):
        chosen = [r for r in rows if keep(r)]
        summary[name] = {"people": len(chosen), **{
            f"verified_in_{v}": {k: sum(r[f"verified_in_{v}"][k] for r in chosen)
                                 for k in ("accepted", "reidentified_somewhere", "below_tau_somewhere")}
            for v in (1, 2, 3)}}
    print(f"{'people':<22} {'views':>5} {'accepted':>8} {'re-id somewhere':>15} {'< tau somewhere':>15}")
    for name, s in summary.items():
        for v in (1, 2, 3):
            c = s[f"verified_in_{v}"]
            print(f"{name + ' (' + str(s['people']) + ')':<22} {v:>5} {c['accepted']:>8} "
                  f"{c['reidentified_somewhere']:>15} {c['below_tau_somewhere']:>15}")
    write_json(args.out, {"argv": public_argv(), "tau": locker.config.tau, "people": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
