"""G_3d benchmark: speed per face, reconstruction, 3D consistency, identity-space diversity.

    python benchmarks/bench_generator.py [--quick] [--no-gallery]

- speed: ms per face for landmarks (FaceMesh on the track crop, tracking mode), render
  (rasterise + texture + shading + alpha), composite, the live repaint and anchor flow, and inversion, at 128 and
  256 px faces; a new track's first landmarks with and without a FaceMesh graph kept ready;
- reconstruction: w_id inverted from every other frontal frame of each shared clip, then
  rendered in the held-out frames' z_aux: PSNR / SSIM over the face oval;
- 3D consistency: the mean identity and random identities rendered at -45..45° yaw on a plain
  canvas, re-found by FaceMesh: mean landmark error (px, 256-px face, front-facing points);
- identities: 20 random draws rendered frontally, dlib descriptors: mean pairwise distance,
  and the nearest real person (lfw_2000, utkface_1500, identities/) and donor face;
- a contact sheet: original | reconstruction | one identity at -45, 0, +45° | three random.
Prints tables and writes benchmarks/out/generator.json and benchmarks/out/generator_sheet.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

from benchlib import public_argv, write_json

from deidstream.engine.generator.face_render import FaceRenderer, Surrogate
from deidstream.engine.generator.facemodel import default_model
from deidstream.engine.generator.follow import AnchorFollower
from deidstream.engine.generator.inversion import Inverter
from deidstream.engine.generator.masks import face_oval_mask
from deidstream.engine.generator.render import Generator
from deidstream.engine.generator.repaint import Repainter, anchors_of
from deidstream.geometry.pose import fit_pose
from deidstream.modelbuild.calibrate import render_on_canvas
from deidstream.modelbuild.collect import StillLandmarker, image_files, read_rgb
from deidstream.tracking.landmarks import FaceLandmarker
from deidstream.types import FaceDetections, FaceView

CLIPS = ("talking_head_1.mp4", "talking_head_2.mp4", "talking_head_4.mp4", "talking_head_5.mp4",
         "talking_head_speech.mp4", "single_face_short.mp4", "talking_d6.mp4", "talking_d9.mp4",
         "talking_d10.mp4", "talking_d13.mp4", "talking_d20.mp4", "portrait_s18.mp4", "portrait_s29.mp4",
         "portrait_s32.mp4")
YAWS = (-45, -30, -15, 0, 15, 30, 45)
GALLERY = ("donors/lfw_2000", "donors/utkface_1500", "identities/johns_5x11", "identities/orl_40x10",
           "identities/cmu_multiview_20")


def clip_faces(marker: StillLandmarker, path: Path, every: int, limit: int) -> list[FaceView]:
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % every:
                continue
            img = f.to_ndarray(format="rgb24")
            p = marker.largest(img)
            if p is not None:
                out.append(FaceView(img, p))
            if len(out) >= limit:
                break
    return out


def frontal(model, o: FaceView, limit: float = 20.0) -> bool:
    yaw, pitch, _ = fit_pose(o.points, model.mesh.vertices, model.mesh.weights).yaw_pitch_roll()
    return abs(yaw) <= limit and abs(pitch) <= limit


def face_scores(original: np.ndarray, output: np.ndarray, points: np.ndarray) -> tuple[float, float]:
    mask = face_oval_mask(points[:, :2], original.shape[:2]) > 0
    err = ((output.astype(np.float64) - original) ** 2)[mask].mean()
    psnr = 10 * np.log10(255.0 ** 2 / max(err, 1e-9))
    ys, xs = np.nonzero(mask)
    box = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    g1 = cv2.cvtColor(original[box], cv2.COLOR_RGB2GRAY)
    g2 = cv2.cvtColor(output[box], cv2.COLOR_RGB2GRAY)
    ssim_map = cv2.quality.QualitySSIM_compute(g1, g2)[1]
    return float(psnr), float(np.asarray(ssim_map)[mask[box]].mean())


def speed(model, gen: Generator, renderer: FaceRenderer, obs: FaceView, runs: int) -> list[dict]:
    rows = []
    person = model.shape_of(model.mean_identity())
    sur = Surrogate.of(gen.model, model.random_identity(np.random.default_rng(0)))
    with FaceLandmarker() as marker:
        for face_px in (128, 256):
            k = face_px / float(np.ptp(obs.points[:, 0]))
            img = cv2.resize(obs.image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
            pts = obs.points * k
            box = np.array([[*pts[:, :2].min(0), *pts[:, :2].max(0)]], np.float32)
            faces = FaceDetections(xyxy=box, score=np.ones(1, np.float32), track_id=np.array([1]))
            lm_ms, render_ms, comp_ms, cpu_ms, repaint_ms, follow_ms = [], [], [], [], [], []
            moved = pts.copy()
            moved[:, :2] += 3.0  # the face 3 px further on in the next frame
            shifted = np.roll(img, (3, 3), axis=(0, 1))  # and the picture with it
            for i in range(runs + 3):
                t0 = time.perf_counter()
                found = marker.landmarks(img, faces)[0]
                t1 = time.perf_counter()
                c1 = time.thread_time()
                face, _ = renderer.render(img, pts if found is None else found, person, sur)
                target = img.copy()
                t2 = time.perf_counter()
                renderer.compositor.apply(target, face)
                t3 = time.perf_counter()
                c3 = time.thread_time()
                repainter = Repainter()
                repainter.remember(1, 0, target, anchors_of(pts), face)
                later = img.copy()
                t4 = time.perf_counter()
                repainter.repaint(1, 1, later, anchors_of(moved))  # live: the last render moved instead of a new one
                t5 = time.perf_counter()
                follower = AnchorFollower()
                follower.seen(1, 0, img, anchors_of(pts))
                t6 = time.perf_counter()
                follower.follow(1, 1, shifted)  # live: the anchors of a face waiting for its turn, instead of FaceMesh
                t7 = time.perf_counter()
                if i >= 3:
                    repaint_ms.append((t5 - t4) * 1e3)
                    follow_ms.append((t7 - t6) * 1e3)
                    lm_ms.append((t1 - t0) * 1e3)
                    render_ms.append((t2 - t1) * 1e3)
                    comp_ms.append((t3 - t2) * 1e3)
                    cpu_ms.append((c3 - c1) * 1e3)
            rows.append({"face_px": face_px, "crop_px": [int(face.alpha.shape[1]), int(face.alpha.shape[0])],
                         "landmarks_ms": round(float(np.median(lm_ms)), 2),
                         "render_ms": round(float(np.median(render_ms)), 2),
                         "composite_ms": round(float(np.median(comp_ms)), 2),
                         "render_plus_composite_ms": round(float(np.median(np.add(render_ms, comp_ms))), 2),
                         "render_plus_composite_best_ms": round(float(np.min(np.add(render_ms, comp_ms))), 2),
                         "render_plus_composite_thread_cpu_ms": round(float(np.median(cpu_ms)), 2),
                         "repaint_ms": round(float(np.median(repaint_ms)), 2),
                         "follow_ms": round(float(np.median(follow_ms)), 2)})
    return rows


def new_track(obs: FaceView, runs: int) -> dict:
    """A new track's first landmarks: with its FaceMesh graph built then, or a graph kept ready
    (``spares``, as live does). Only the first call is timed, not the landmarker's construction."""
    box = np.array([[*obs.points[:, :2].min(0), *obs.points[:, :2].max(0)]], np.float32)
    faces = FaceDetections(xyxy=box, score=np.ones(1, np.float32), track_id=np.array([1]))
    out: dict[str, float] = {}
    for name, spares in (("built_ms", 0), ("kept_ms", 1)):
        times = []
        for _ in range(runs):
            with FaceLandmarker(spares=spares) as marker:
                t0 = time.perf_counter()
                marker.landmarks(obs.image, faces)
                times.append((time.perf_counter() - t0) * 1e3)
        out[name] = round(float(np.median(times)), 2)
    return out


def reconstruction(model, gen: Generator, renderer: FaceRenderer, marker: StillLandmarker, clips: list[str],
                   per_clip: int) -> tuple[list[dict], dict]:
    inverter = Inverter(model)
    rows, example = [], {}
    for name in clips:
        path = DATA / "videos" / name
        if not path.exists():
            continue
        obs = [o for o in clip_faces(marker, path, every=5, limit=per_clip * 2) if frontal(model, o)]
        if len(obs) < 4:
            continue
        fit, held = obs[0::2], obs[1::2]
        t0 = time.perf_counter()
        ident = inverter.invert(fit)
        inv_ms = (time.perf_counter() - t0) * 1e3
        sur = Surrogate.of(gen.model, ident)
        person = model.shape_of(ident)
        scores = []
        for o in held:
            out = o.image.copy()
            renderer.paint(out, o.points, person, sur)
            scores.append(face_scores(o.image, out, o.points))
            if not example:
                example = {"original": o.image, "output": out, "points": o.points, "identity": ident}
        psnr, ssim = np.mean(scores, axis=0)
        rows.append({"clip": name, "fit_frames": len(fit), "held_out_frames": len(held), "psnr": round(float(psnr), 2),
                     "ssim": round(float(ssim), 3), "inversion_ms": round(inv_ms, 1),
                     "inversion_ms_per_frame": round(inv_ms / len(fit), 1)})
        print(f"  {name:28s} psnr {psnr:5.2f}  ssim {ssim:.3f}  ({len(fit)} fit / {len(held)} held out)", flush=True)
    return rows, example


def visible(gen: Generator, points: np.ndarray) -> np.ndarray:
    tris = gen.triangles
    a, b, c = (points[tris[:, k]].astype(np.float64) for k in range(3))
    nz = np.cross(b - a, c - a)[:, 2] * gen.front_sign
    seen = np.zeros(len(points), bool)
    seen[np.unique(tris[nz > 0])] = True
    return seen


def consistency(model, gen: Generator, marker: StillLandmarker, n_random: int) -> list[dict]:
    rng = np.random.default_rng(1)
    idents = [("mean", model.mean_identity())] + [(f"random{i}", model.random_identity(rng)) for i in range(n_random)]
    rows = []
    for name, ident in idents:
        shape_c, app_c = gen.identity_tensors(ident)
        with torch.no_grad():
            shape, tex = gen.shape(shape_c).numpy(), gen.texture(app_c, open_eyes=True)
        errs = {}
        for yaw in YAWS:
            image, drawn, _ = render_on_canvas(gen, shape, tex, yaw, 0.0)
            found = marker.largest(image)
            seen = visible(gen, drawn)
            errs[str(yaw)] = None if found is None else round(float(
                np.linalg.norm(found[seen, :2] - drawn[seen, :2], axis=1).mean()), 2)
        rows.append({"identity": name, "error_px_by_yaw": errs})
        print(f"  {name:8s} " + "  ".join(f"{k:>4s}°:{v}" for k, v in errs.items()), flush=True)
    return rows


def describe_render(recognizer, image: np.ndarray, points: np.ndarray) -> np.ndarray:
    faces = recognizer.detect(image)
    if not faces:
        lo, hi = points[:, :2].min(0), points[:, :2].max(0)
        faces = recognizer.at_boxes(image, np.array([[lo[0], lo[1] + 0.15 * (hi[1] - lo[1]), hi[0], hi[1]]]))
    return recognizer.describe(image, faces[:1])[0]


def identities(model, gen: Generator, n: int, gallery: bool, limit: int) -> tuple[dict, list[np.ndarray]]:
    from deidstream.evaluation.judge import DlibRecognizer

    recognizer = DlibRecognizer("hog", upsample=1)
    rng = np.random.default_rng(2026)
    descs, images = [], []
    for _ in range(n):
        ident = model.random_identity(rng)
        shape_c, app_c = gen.identity_tensors(ident)
        with torch.no_grad():
            shape, tex = gen.shape(shape_c).numpy(), gen.texture(app_c, open_eyes=True)
        image, drawn, _ = render_on_canvas(gen, shape, tex, 0.0, 0.0, face_px=200.0)
        descs.append(describe_render(recognizer, image, drawn))
        images.append(image)
    d = np.array(descs)
    pair = np.linalg.norm(d[:, None] - d[None], axis=2)[np.triu_indices(n, 1)]
    out = {"draws": n, "mean_pairwise": round(float(pair.mean()), 3), "min_pairwise": round(float(pair.min()), 3),
           "pairs_below_0.6": int((pair < 0.6).sum())}
    donor = np.linalg.norm(d[:, None] - model.donor_descriptors[None], axis=2)
    out["nearest_donor"] = round(float(donor.min()), 3)
    # how crowded the donor set itself is: SFHQ varies one synthetic person by age, hair, expression
    dd = np.linalg.norm(model.donor_descriptors[:, None] - model.donor_descriptors[None], axis=2)
    np.fill_diagonal(dd, np.inf)
    out["donors_with_another_donor_within_0.6"] = round(float((dd.min(1) < 0.6).mean()), 3)
    if gallery:
        real = []
        for folder in GALLERY:
            for path in image_files(DATA / folder)[: limit or None]:
                img = read_rgb(path)
                if img is None:
                    continue
                faces = recognizer.detect(img)
                if faces:
                    real.append(recognizer.describe(img, faces[:1])[0])
        real = np.array(real)
        dist = np.linalg.norm(d[:, None] - real[None], axis=2)
        out.update({"gallery_faces": len(real), "nearest_real_person": round(float(dist.min()), 3),
                    "draws_within_0.6_of_a_real_person": int((dist.min(1) < 0.6).sum())})
        # the same check for real people, none of whom the donors were made from
        real_to_donor = np.linalg.norm(real[:, None] - model.donor_descriptors[None], axis=2).min(1)
        out["real_people_nearest_donor_p5_p50_p95"] = [round(float(v), 3)
                                                       for v in np.percentile(real_to_donor, [5, 50, 95])]
        out["real_people_within_0.6_of_a_donor"] = round(float((real_to_donor < 0.6).mean()), 3)
    return out, images


def sheet(example: dict, gen: Generator, model, randoms: list[np.ndarray], path: Path) -> None:
    size = 220

    def tile(img: np.ndarray, pts: np.ndarray | None = None) -> np.ndarray:
        if pts is not None:
            lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
            c, r = (lo + hi) / 2, (hi - lo).max() * 0.75
            x0, y0 = int(max(c[0] - r, 0)), int(max(c[1] - r, 0))
            img = img[y0:int(c[1] + r), x0:int(c[0] + r)]
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)

    tiles = []
    if example:
        tiles += [tile(example["original"], example["points"]), tile(example["output"], example["points"])]
    ident = model.random_identity(np.random.default_rng(7))
    shape_c, app_c = gen.identity_tensors(ident)
    with torch.no_grad():
        shape, tex = gen.shape(shape_c).numpy(), gen.texture(app_c, open_eyes=True)
    for yaw in (-45, 0, 45):
        image, drawn, _ = render_on_canvas(gen, shape, tex, yaw, 0.0)
        tiles.append(tile(image, drawn))
    tiles += [tile(img[150:450, 170:470]) for img in randoms[:3]]
    cv2.imwrite(str(path), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 clips, 2 random identities, small gallery")
    ap.add_argument("--no-gallery", action="store_true", help="skip the real-person gallery check")
    ap.add_argument("--only", default="speed,reconstruction,consistency,identities",
                    help="comma-separated sections to run; the others are kept from the existing JSON")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "generator.json")
    args = ap.parse_args()
    only = set(args.only.split(","))
    if not (DATA / "videos").is_dir():
        print(f"missing {DATA} (the shared data folder)", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    model = default_model()
    gen = Generator(model)
    renderer = FaceRenderer(gen.model)
    marker = StillLandmarker()
    clips = list(CLIPS[:3] if args.quick else CLIPS)
    result: dict = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.update({"argv": public_argv(), "torch_threads": 1, "model": model.provenance.get("appearance", {})})

    if "speed" in only:
        first = clip_faces(marker, DATA / "videos" / "talking_head_1.mp4", every=30, limit=2)[1]
        print("speed (ms per face: median wall, best wall, median thread CPU)")
        result["speed"] = speed(model, gen, renderer, first, runs=10 if args.quick else 40)
        for r in result["speed"]:
            print(f"  {r['face_px']:4d} px face (crop {r['crop_px']}): landmarks {r['landmarks_ms']:.1f}  render "
                  f"{r['render_ms']:.1f}  composite {r['composite_ms']:.1f}  render+composite "
                  f"{r['render_plus_composite_ms']:.1f} (best {r['render_plus_composite_best_ms']:.1f}, "
                  f"thread CPU {r['render_plus_composite_thread_cpu_ms']:.1f})  repaint {r['repaint_ms']:.1f}  "
                  f"follow {r['follow_ms']:.2f}")
        result["new_track_first_landmarks"] = new_track(first, runs=4 if args.quick else 8)
        nt = result["new_track_first_landmarks"]
        print(f"  a new track's first landmarks: {nt['built_ms']:.1f} ms building its FaceMesh graph, "
              f"{nt['kept_ms']:.1f} ms with a graph kept ready")
    example: dict = {}
    if "reconstruction" in only:
        print("reconstruction (held-out frontal frames, face oval)")
        rows, example = reconstruction(model, gen, renderer, marker, clips, per_clip=8 if args.quick else 16)
        result["reconstruction"] = {"clips": rows,
                                    "mean_psnr": round(float(np.mean([r["psnr"] for r in rows])), 2),
                                    "mean_ssim": round(float(np.mean([r["ssim"] for r in rows])), 3)}
        print(f"  mean psnr {result['reconstruction']['mean_psnr']}  ssim {result['reconstruction']['mean_ssim']}")
    if "consistency" in only:
        print("3D consistency (re-found landmarks, mean px, 256-px face)")
        result["consistency"] = consistency(model, gen, marker, n_random=2 if args.quick else 5)
    if "identities" in only:
        print("random identities")
        ids, randoms = identities(model, gen, 20, gallery=not args.no_gallery, limit=60 if args.quick else 0)
        result["identities"] = ids
        print("  " + "  ".join(f"{k} {v}" for k, v in ids.items()))
        if example:
            sheet(example, gen, model, randoms, args.out.with_name("generator_sheet.png"))
    marker.close()
    write_json(args.out, result, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
