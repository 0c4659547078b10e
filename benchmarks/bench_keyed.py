"""Keyed consistency across runs: the same person in two files processed separately with one key.

    python benchmarks/bench_keyed.py [--clips a.mp4 ...] [--every 5] [--out FILE]

Each one-person shared clip is cut into its two halves (two files); each half is anonymised by its own
command with the benchmark key, and the first half again with another key. dlib's own detector and
descriptor (the evaluation's independent judge) describe the largest face of every ``every``-th frame of
each output, and a person's surrogate is the mean of those descriptors. Reported, as the issue asks:

- same person, same key, separate runs: the two halves' surrogates (target ≤ 0.45 apart);
- same person, another key: the surrogates of the first half under the two keys (target ≥ 0.6);
- different people, same key: every pair of clips' first-half surrogates (target ≥ 0.6), beside how far
  apart the people themselves are.

Prints a table and writes benchmarks/out/keyed.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import largest_faces, machine, public_argv, write_json

from deidstream.evaluation.judge import DlibRecognizer

VIDEOS = ROOT.parent / "shared" / "data" / "videos"
KEYS = ("deidstream-benchmark", "deidstream-benchmark-other")
CLIPS = ("talking_d6.mp4", "talking_d9.mp4", "talking_d10.mp4", "talking_d13.mp4", "talking_d20.mp4",
         "talking_head_1.mp4", "talking_head_2.mp4", "talking_head_4.mp4", "portrait_s18.mp4", "portrait_s29.mp4",
         "portrait_s32.mp4")


def halves(clip: Path, folder: Path) -> tuple[Path, Path]:
    """The clip's first and second half as two files (video only, near-lossless)."""
    with av.open(str(clip)) as src:
        stream = src.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in src.decode(stream)]
        rate = stream.average_rate or 25
    out = []
    for part, chunk in (("a", frames[: len(frames) // 2]), ("b", frames[len(frames) // 2:])):
        path = folder / f"{clip.stem}_{part}.mp4"
        with av.open(str(path), "w") as dst:
            video = dst.add_stream("libx264", rate=rate, options={"crf": "12"})
            video.height, video.width = chunk[0].shape[:2]
            video.pix_fmt = "yuv420p"
            for image in chunk:
                dst.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            dst.mux(video.encode())
        out.append(path)
    return out[0], out[1]


def anonymise(src: Path, dst: Path, key: str) -> Path:
    subprocess.run([sys.executable, "-m", "deidstream", str(src), str(dst), "--identity-key", key, "-q"], check=True)
    return dst


def person(judge: DlibRecognizer, video: Path, every: int) -> np.ndarray | None:
    """Mean dlib descriptor of the largest face of every ``every``-th frame."""
    found = largest_faces(judge, video, every)
    return found.mean(axis=0) if len(found) else None


def apart(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    return None if a is None or b is None else round(float(np.linalg.norm(a - b)), 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", nargs="*", default=list(CLIPS))
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "keyed.json")
    args = p.parse_args()
    judge = DlibRecognizer("hog", upsample=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.clips:
            clip = VIDEOS / name
            a, b = halves(clip, folder)
            out_a = anonymise(a, folder / f"{clip.stem}_a_out.mp4", KEYS[0])
            out_b = anonymise(b, folder / f"{clip.stem}_b_out.mp4", KEYS[0])
            out_k = anonymise(a, folder / f"{clip.stem}_a_other_key.mp4", KEYS[1])
            d = {k: person(judge, v, args.every) for k, v in
                 (("in_a", a), ("in_b", b), ("out_a", out_a), ("out_b", out_b), ("out_k", out_k))}
            row = {"clip": name, "same_key_halves": apart(d["out_a"], d["out_b"]),
                   "other_key": apart(d["out_a"], d["out_k"]), "input_halves": apart(d["in_a"], d["in_b"]),
                   "surrogate_to_person": apart(d["out_a"], d["in_a"]), "_in": d["in_a"], "_out": d["out_a"]}
            print(f"{name:24s} same key, two runs {row['same_key_halves']}  other key {row['other_key']}  "
                  f"(the person's halves {row['input_halves']}, surrogate to person {row['surrogate_to_person']})",
                  flush=True)
            rows.append(row)
    pairs = [{"clips": [r["clip"], s["clip"]], "surrogates": apart(r["_out"], s["_out"]),
              "people": apart(r["_in"], s["_in"])} for i, r in enumerate(rows) for s in rows[i + 1:]]
    clips = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    same = [r["same_key_halves"] for r in clips if r["same_key_halves"] is not None]
    other = [r["other_key"] for r in clips if r["other_key"] is not None]
    people = [q["surrogates"] for q in pairs if q["surrogates"] is not None and (q["people"] or 0) >= 0.6]
    def share(values: list[float], ok) -> float | None:
        return round(float(np.mean([ok(v) for v in values])), 3) if values else None

    summary = {
        "clips": len(clips), "same_key_within_0.45": share(same, lambda v: v <= 0.45),
        "same_key_max": max(same, default=None), "other_key_at_least_0.6": share(other, lambda v: v >= 0.6),
        "other_key_min": min(other, default=None), "different_people_pairs": len(people),
        "different_people_at_least_0.6": share(people, lambda v: v >= 0.6),
        "different_people_min": min(people, default=None)}
    print(summary)
    write_json(args.out, {"argv": public_argv(), "machine": machine(), "every": args.every, "keys": len(KEYS),
                          "summary": summary, "clips": clips, "pairs": pairs})


if __name__ == "__main__":
    main()
