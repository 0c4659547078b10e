"""Is a surrogate someone real? Output faces of surrogate runs against a gallery of real people.

    python benchmarks/bench_gallery.py [--clips a.mp4 ...] [--every 10] [--limit N]

Runs ``deidstream --mode surrogate`` (a fixed key) on each clip, describes the output at every
original face's place (every K-th frame; dlib HOG on the original, ResNet on the output at
that box, as ``deidstream evaluate`` does) and every face of ../shared/data/donors (lfw_2000,
utkface_1500: real people the model was not built from), then counts output faces within 0.6
(dlib's same person) of anyone in the gallery. The same count for the clips' original faces
(real people who are not in the gallery either) is the base rate: how often dlib finds *some*
stranger among 3,500 within 0.6 of a face. Descriptors stay in memory. Prints a table and
writes benchmarks/out/gallery.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from benchlib import public_argv, write_json
from media import read_rgb

from deidstream.evaluation.judge import SAME_PERSON, DlibRecognizer

DEFAULT_CLIPS = ["stage_multi_person_cuts.mp4", "talking_head_1.mp4", "hands_occlusion_expressions.mp4",
                 "two_faces_selfie_portrait.mp4", "crowd_1080p.mp4"]
GALLERY = ("donors/lfw_2000", "donors/utkface_1500")
KEY = "deidstream-benchmark"


def gallery(rec: DlibRecognizer, limit: int) -> np.ndarray:
    """Descriptors of the largest face of every gallery photo (photos without a face skipped)."""
    chips: list[np.ndarray] = []
    for folder in GALLERY:
        files = sorted(p for p in (DATA / folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for path in files[:limit or None]:
            image = cv2.imread(str(path))
            if image is None:
                continue
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            faces = rec.detect(image)
            if faces:
                chips.extend(rec.chips(image, [max(faces, key=lambda f: float(f.box[2] - f.box[0]))]))
    return np.concatenate([rec.describe_chips(chips[i:i + 64]) for i in range(0, len(chips), 64)])


def faces_of(rec: DlibRecognizer, original: Path, output: Path, every: int) -> tuple[np.ndarray, np.ndarray]:
    """(input, output) descriptors at the original's faces, every ``every``-th frame."""
    ins, outs = [], []
    for a, b in zip(read_rgb(original)[::every], read_rgb(output)[::every]):
        faces = rec.detect(a)
        if faces:
            ins.append(rec.describe(a, faces))
            outs.append(rec.describe(b, rec.at_boxes(b, np.stack([f.box for f in faces]))))
    empty = np.zeros((0, 128), np.float32)
    return (np.concatenate(ins) if ins else empty), (np.concatenate(outs) if outs else empty)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="*")
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--limit", type=int, default=0, help="photos per gallery folder (0: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "gallery.json")
    args = ap.parse_args()
    clips = [Path(c) for c in args.clips] if args.clips else [DATA / "videos" / c for c in DEFAULT_CLIPS]
    rec = DlibRecognizer("hog", upsample=1, workers=2)
    t0 = time.perf_counter()
    real = gallery(rec, args.limit)
    print(f"gallery: {len(real)} real faces ({', '.join(GALLERY)}) in {time.perf_counter() - t0:.0f} s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            out = Path(tmp) / f"{clip.stem}.mp4"
            subprocess.run([sys.executable, "-m", "deidstream", str(clip), str(out), "--mode", "surrogate",
                            "--identity-key", KEY, "-q", "--overwrite"], check=True)
            ins, outs = faces_of(rec, clip, out, args.every)
            if not len(ins):
                continue
            near_in = np.linalg.norm(ins[:, None] - real[None], axis=2).min(1)
            near_out = np.linalg.norm(outs[:, None] - real[None], axis=2).min(1)
            row = {"clip": clip.name, "faces": len(ins),
                   "outputs_within_0.6_of_a_real_person": int((near_out < SAME_PERSON).sum()),
                   "output_nearest_real_min_median": [round(float(near_out.min()), 3),
                                                      round(float(np.median(near_out)), 3)],
                   "originals_within_0.6_of_a_real_person": int((near_in < SAME_PERSON).sum()),
                   "original_nearest_real_min_median": [round(float(near_in.min()), 3),
                                                        round(float(np.median(near_in)), 3)]}
            rows.append(row)
            print(f"{clip.name:34s} faces {len(ins):4d} | outputs within 0.6 of someone "
                  f"{row['outputs_within_0.6_of_a_real_person']:3d} (nearest {near_out.min():.2f}, median "
                  f"{np.median(near_out):.2f}) | originals {row['originals_within_0.6_of_a_real_person']:3d} "
                  f"(nearest {near_in.min():.2f}, median {np.median(near_in):.2f})", flush=True)
    rec.close()
    total = {k: sum(r[k] for r in rows) for k in ("faces", "outputs_within_0.6_of_a_real_person",
                                                  "originals_within_0.6_of_a_real_person")}
    print(f"all clips: {total}")
    write_json(args.out, {"argv": public_argv(), "gallery_faces": len(real), "gallery": list(GALLERY),
                          "every": args.every, "rows": rows, "total": total})


if __name__ == "__main__":
    main()
