"""E_id in torch (deidstream.networks.eid) against dlib's own network: parity, alignment, speed.

    python benchmarks/bench_eid.py [--frames-per-clip 8] [--per-folder 100] [--out benchmarks/out/eid.json]

Faces: sampled frames of every shared clip (decoded with PyAV), the identity stills and some of
the donor photos; on each, dlib's HOG detector, its 5-point shape predictor and
``dlib.get_face_chips(image, shape, 150, 0.25)``, as the product's ``DlibRecognizer`` does.

(a) parity: the same dlib chips through dlib's network and the torch one: median / p99 / max L2
    between the descriptors, and over all pairs of faces the share where both say the same about
    "same person" (distance < 0.6);
(b) alignment: how far descriptors move when the chip is cut by ``deidstream.geometry.chips``
    from dlib's 5 points (dlib's geometry, reproduced), from the 5 nearest MediaPipe landmarks (the
    pipeline's FaceLandmarker on dlib's box), and the product's way (``EidRecognizer``: dlib's
    5-point model run in numpy by ``deidstream.networks.shape_predictor``, started from those
    landmarks' box), each against dlib's chip, all through the torch net; and whether the numpy
    5-point model gives dlib's own points on dlib's box (share of faces identical to the pixel);
(c) speed on one thread (torch, BLAS, OpenCV): ms per face for dlib's network on a list of
    chips, torch at batch 1, 8 and 32 (plain and under ``torch.inference_mode``), each cut of the
    chips, dlib's 5-point model (dlib's and the numpy one, one face per call), and bfloat16
    autocast at batch 32 (faster, not dlib's numbers: its parity is shown).
    Best of 5 runs on the same real chips (timings depend on the pixels: noise runs slower).

Prints a table and writes benchmarks/out/eid.json. No descriptors are written.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")

import av
import cv2
import torch
from benchlib import machine, public_argv, write_json
from threadpoolctl import threadpool_limits

from deidstream.evaluation.judge import SAME_PERSON
from deidstream.export.cache import eid_onnx
from deidstream.export.runtime import session
from deidstream.geometry.boxes import landmark_box
from deidstream.geometry.chips import chips_tensor, face_chips, face_chips_from_mediapipe
from deidstream.networks.eid import default_model_path, load_face_descriptor_net
from deidstream.networks.shape_predictor import load_shape_predictor
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.types import FaceDetections

STILLS = {  # folder under the shared data -> file pattern
    "identities/johns_5x11": "*/*.jpg",
    "identities/orl_40x10/resources/att_faces": "*/*.pgm",
    "donors/lfw_2000/data/lfw-deepfunneled": "*/*.jpg",
    "donors/synthetic_generated/images": "*/*/*.jpg",
    "donors/utkface_1500/crop_part1": "*.jpg",
}
UPSAMPLE_UP_TO = 640  # HOG looks at images up to this side at twice the size (small faces)
SPEED_FACES = 32
REPS = 5


def video_frames(path: Path, per_clip: int) -> Iterator[np.ndarray]:
    """``per_clip`` frames spread over the clip, RGB."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        step = max(1, (stream.frames or 300) // per_clip)  # 300: a clip whose header does not say
        for i, frame in enumerate(container.decode(stream)):
            if i % step == 0:
                yield frame.to_ndarray(format="rgb24")


def images(frames_per_clip: int, per_folder: int) -> Iterator[tuple[str, np.ndarray]]:
    for clip in sorted(p for p in (DATA / "videos").iterdir() if p.suffix in (".mp4", ".mov")):
        for frame in video_frames(clip, frames_per_clip):
            yield f"videos/{clip.name}", frame
    for folder, pattern in STILLS.items():
        files = sorted((DATA / folder).glob(pattern))
        for path in files[::max(1, len(files) // per_folder)][:per_folder]:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey files come back as 3 equal channels
            if image is not None:
                yield folder, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def collect(frames_per_clip: int, per_folder: int) -> dict:
    """Every face dlib finds: its source, dlib's chip, chips.py's chip from the same 5 points, the
    chips aligned by the 5 nearest landmarks and the product's way (None where FaceMesh found no
    face), whether the numpy 5-point model agrees with dlib's, and SPEED_FACES frames to time on."""
    import dlib

    models = default_model_path().parent
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    numpy_predictor = load_shape_predictor()
    out: dict = {"source": [], "dlib": [], "ours": [], "mediapipe": [], "product": [], "same_points": [],
                 "timing": []}
    with FaceLandmarker() as landmarker:
        for source, image in images(frames_per_clip, per_folder):
            image = np.ascontiguousarray(image)
            rects = detector(image, 1 if max(image.shape[:2]) <= UPSAMPLE_UP_TO else 0)
            if not rects:
                continue
            shapes = dlib.full_object_detections()
            for r in rects:
                shapes.append(predictor(image, r))
            points = np.array([[(p.x, p.y) for p in s.parts()] for s in shapes], np.float64)
            boxes = np.array([(r.left(), r.top(), r.right(), r.bottom()) for r in rects], np.float32)
            marks = landmarker.landmarks(image, FaceDetections(boxes, np.ones(len(boxes), np.float32)))
            out["same_points"].extend(np.abs(numpy_predictor(image, boxes) - points).max(axis=(1, 2)) == 0)
            for i in range(len(rects)):
                one = dlib.full_object_detections()
                one.append(shapes[i])
                out["source"].append(source)
                out["dlib"].append(dlib.get_face_chips(image, one, 150, 0.25)[0])
                out["ours"].append(face_chips(image, points[i:i + 1])[0])
                mp = None if marks[i] is None else face_chips_from_mediapipe(image, marks[i][None])[0]
                out["mediapipe"].append(mp)
                out["product"].append(None if marks[i] is None else face_chips(
                    image, numpy_predictor(image, landmark_box(marks[i])[None]))[0])
                if source.startswith("videos/") and len(out["timing"]) < SPEED_FACES:
                    out["timing"].append((image, one, points[i:i + 1], boxes[i:i + 1]))
    return out


def describe(net: torch.nn.Module, chips: list[np.ndarray], batch: int = 32) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([net(chips_tensor(np.stack(chips[i:i + batch]))).numpy()
                               for i in range(0, len(chips), batch)])


def quantiles(values: np.ndarray, *qs: float) -> dict:
    names = {50: "median", 100: "max"}
    return {names.get(q, f"p{q:g}"): float(f"{np.percentile(values, q):.3g}") for q in qs}


def pair_agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """Over all pairs of faces: the share where descriptors ``a`` and ``b`` agree on distance < 0.6."""
    i, j = np.triu_indices(len(a), 1)
    da = np.linalg.norm(a[i] - a[j], axis=1)
    db = np.linalg.norm(b[i] - b[j], axis=1)
    same_a, same_b = da < SAME_PERSON, db < SAME_PERSON
    return {"pairs": int(len(i)), "same_person_pairs_dlib": int(same_a.sum()),
            "agreement": round(float((same_a == same_b).mean()), 6), "disagreeing_pairs": int((same_a != same_b).sum()),
            "max_pair_distance_change": float(f"{np.abs(da - db).max():.3g}")}


def compare(faces: dict, net: torch.nn.Module, ref: np.ndarray) -> dict:
    """(a) and (b): torch against dlib on dlib's chips, and each other cut against dlib's chip."""
    ours = describe(net, faces["dlib"])
    on_dlib_points = describe(net, faces["ours"])
    has_mp = [i for i, c in enumerate(faces["mediapipe"]) if c is not None]
    on_mediapipe = describe(net, [faces["mediapipe"][i] for i in has_mp])
    product = describe(net, [faces["product"][i] for i in has_mp])
    pixels = np.abs(np.stack(faces["ours"]).astype(np.int16) - np.stack(faces["dlib"]).astype(np.int16))
    shift = {"chips.py from dlib's 5 points": (on_dlib_points, ours),
             "chips.py from MediaPipe landmarks": (on_mediapipe, ours[has_mp]),
             "product: numpy 5-point model at the landmarks' box": (product, ours[has_mp])}
    alignment = {name: {**quantiles(np.linalg.norm(a - b, axis=1), 50, 90, 100), "faces": len(a)}
                 for name, (a, b) in shift.items()}
    alignment["chips.py from dlib's 5 points"]["pixel_mean_abs"] = round(float(pixels.mean()), 4)
    alignment["numpy 5-point model on dlib's box: faces with dlib's points"] = {
        "share": round(float(np.mean(faces["same_points"])), 6), "faces": len(faces["same_points"])}
    return {"parity": {"l2": quantiles(np.linalg.norm(ours - ref, axis=1), 50, 99, 100),
                       "pairs": pair_agreement(ref, ours)}, "alignment": alignment}


def best_ms(fn: Callable[[], object], faces: int) -> float:
    """Best of REPS runs, in ms per face."""
    times = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * min(times) / faces, 2)


def speed(faces: dict, net: torch.nn.Module, encoder: object, reference: np.ndarray) -> dict:
    """ms per face on one thread, each way, on SPEED_FACES real faces."""
    import dlib

    timing = faces["timing"]
    picked = [i for i, s in enumerate(faces["source"]) if s.startswith("videos/")][:len(timing)]  # timing's faces
    chips, reference = [faces["dlib"][i] for i in picked], reference[picked]
    n = len(chips)
    x = chips_tensor(np.stack(chips))
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    result: dict = {"faces": n}
    with threadpool_limits(1):
        encoder.compute_face_descriptor(chips[:2])  # type: ignore[attr-defined]
        result["dlib_network"] = best_ms(lambda: encoder.compute_face_descriptor(chips), n)  # type: ignore[attr-defined]
        result["dlib_chips"] = best_ms(lambda: [dlib.get_face_chips(im, one, 150, 0.25) for im, one, _, _ in timing], n)
        result["our_chips"] = best_ms(lambda: [face_chips(im, pts) for im, _, pts, _ in timing], n)
        predictor = dlib.shape_predictor(str(default_model_path().parent / "shape_predictor_5_face_landmarks.dat"))
        rects = [dlib.rectangle(*(int(v) for v in box[0])) for _, _, _, box in timing]
        result["dlib_5_points"] = best_ms(lambda: [predictor(im, r) for (im, _, _, _), r in zip(timing, rects)], n)
        numpy_predictor = load_shape_predictor()
        result["numpy_5_points"] = best_ms(lambda: [numpy_predictor(im, box) for im, _, _, box in timing], n)
        for mode, context in (("plain", torch.enable_grad), ("inference_mode", torch.inference_mode)):
            with context():
                for b in (1, 8, 32):
                    batches = [x[i:i + b] for i in range(0, n, b)]
                    net(batches[0])
                    result[f"torch_b{b}_{mode}"] = best_ms(lambda batches=batches: [net(c) for c in batches], n)
        run = session(eid_onnx(), ("cpu",), threads=1)
        arrays = np.ascontiguousarray(x.numpy())
        for b in (1, 8, 32):
            batches = [arrays[i:i + b] for i in range(0, n, b)]
            run.run(None, {"chips": batches[0]})
            result[f"onnxruntime_b{b}"] = best_ms(
                lambda batches=batches: [run.run(None, {"chips": c}) for c in batches], n)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            net(x)
            result["torch_b32_bfloat16"] = best_ms(lambda: net(x), n)
            error = np.linalg.norm(net(x).float().numpy() - reference, axis=1)
    result["bfloat16_parity"] = quantiles(error, 50, 100)
    result["dlib_total"] = round(result["dlib_chips"] + result["dlib_network"], 2)
    result["torch_total_b32"] = round(result["our_chips"] + result["torch_b32_inference_mode"], 2)
    result["product_total_b32"] = round(result["numpy_5_points"] + result["torch_total_b32"], 2)
    result["product_total_b32_onnxruntime"] = round(result["numpy_5_points"] + result["our_chips"]
                                                    + result["onnxruntime_b32"], 2)
    result["dlib_total_with_5_points"] = round(result["dlib_5_points"] + result["dlib_total"], 2)
    result["speedup_product_b32"] = round(result["dlib_total_with_5_points"] / result["product_total_b32"], 2)
    result["speedup_b32"] = round(result["dlib_total"] / result["torch_total_b32"], 2)
    return result


def print_table(result: dict) -> None:
    p, s = result["parity"], result["speed"]
    print(f"\nfaces: {result['faces']} ({', '.join(f'{k} {v}' for k, v in result['faces_by_source'].items())})")
    print(f"(a) parity, torch vs dlib on dlib's chips: L2 median {p['l2']['median']:.2e}, p99 {p['l2']['p99']:.2e}, "
          f"max {p['l2']['max']:.2e}; same person at {SAME_PERSON}: agreement {p['pairs']['agreement']:.6f} over "
          f"{p['pairs']['pairs']} pairs ({p['pairs']['disagreeing_pairs']} disagree)")
    print("(b) descriptor shift against dlib's chip (torch net)       median      p90      max   faces")
    for name, row in result["alignment"].items():
        if "median" in row:
            print(f"    {name:52} {row['median']:8.4f} {row['p90']:8.4f} {row['max']:8.4f} {row['faces']:6d}")
        else:
            print(f"    {name}: {row['share']:.4f} of {row['faces']}")
    print(f"(c) one thread, ms per face ({s['faces']} real faces, best of {REPS})")
    print(f"    dlib: chips {s['dlib_chips']:.2f} + network {s['dlib_network']:.2f} = {s['dlib_total']:.2f}")
    print(f"    ours: chips {s['our_chips']:.2f}")
    print(f"    5 points, one face per call: dlib {s['dlib_5_points']:.2f}, numpy {s['numpy_5_points']:.2f}")
    print(f"    {'torch':14} {'batch 1':>8} {'batch 8':>8} {'batch 32':>8}")
    for mode in ("plain", "inference_mode"):
        print(f"    {mode:14} " + " ".join(f"{s[f'torch_b{b}_{mode}']:8.2f}" for b in (1, 8, 32)))
    bf = s["bfloat16_parity"]
    print(f"    {'onnxruntime':14} " + " ".join(f"{s[f'onnxruntime_b{b}']:8.2f}" for b in (1, 8, 32)))
    print(f"    bfloat16 autocast, batch 32: {s['torch_b32_bfloat16']:.2f} (L2 to dlib median {bf['median']:.4f}, "
          f"max {bf['max']:.4f})")
    print(f"    chips + network at batch 32: {s['torch_total_b32']:.2f} against dlib's {s['dlib_total']:.2f}: "
          f"{s['speedup_b32']:.2f}x")
    print(f"    with the 5 points (the product's E_id): {s['product_total_b32']:.2f} against dlib's "
          f"{s['dlib_total_with_5_points']:.2f}: {s['speedup_product_b32']:.2f}x; in onnxruntime "
          f"{s['product_total_b32_onnxruntime']:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description="E_id in torch against dlib: parity, alignment, speed")
    ap.add_argument("--frames-per-clip", type=int, default=8)
    ap.add_argument("--per-folder", type=int, default=100, help="stills per identity / donor folder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "eid.json")
    args = ap.parse_args()
    if not (DATA / "videos").is_dir():
        print(f"skipped: the shared data is not at {DATA} (the benchmark needs its videos and photos)", file=sys.stderr)
        return 0
    import dlib

    faces = collect(args.frames_per_clip, args.per_folder)
    encoder = dlib.face_recognition_model_v1(str(default_model_path()))
    net = load_face_descriptor_net()
    with threadpool_limits(1):
        ref = np.array(encoder.compute_face_descriptor(faces["dlib"]), np.float32)
    sources = [s.split("/")[0] if s.startswith("videos/") else s.split("/")[1] for s in faces["source"]]
    result = {"argv": public_argv(), **machine(), "torch": torch.__version__, "dlib": dlib.__version__,
              "faces": len(ref), "faces_by_source": {k: len(list(g)) for k, g in itertools.groupby(sorted(sources))},
              **compare(faces, net, ref), "speed": speed(faces, net, encoder, ref)}
    print_table(result)
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
