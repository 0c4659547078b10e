"""``deidstream build-donors``: the natural identity space, from the synthetic SFHQ donors.

Each donor photo is unwrapped onto the face mesh's UV layout (MediaPipe FaceMesh landmarks, static
mode), its light normalised against the donors' mean (the frame's light is put back at render time),
its mouth interior inpainted from the lips (a render keeps the subject's own), the cheek its photo saw
edge-on filled from the other cheek (stretched into streaks, it showed as smudges on surrogates' cheeks),
and kept with its apparent sex and age band (hand labels: ``data/sfhq_labels.csv``), skin ITA°,
pose-normalised shape and E_id descriptor. Only teens' and adults' frontal, unstylised faces without
glasses, a strong expression or hair over the face are kept: a donor's glasses, open smile, doll-like eyes
or fringe would show on every frame of a surrogate made from them.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from deidstream.engine.generator.aux import canonical_shape
from deidstream.engine.generator.donors import AGE_BANDS, DEFAULT_DONORS, DonorBank
from deidstream.engine.generator.facemodel import normalise_lighting, skin_ita
from deidstream.engine.generator.masks import InteriorContours, polygons_mask
from deidstream.engine.generator.uvmap import UVAtlas
from deidstream.geometry.mesh import default_mesh
from deidstream.geometry.pose import fit_pose
from deidstream.modelbuild.collect import StillLandmarker, read_rgb

log = logging.getLogger(__name__)
LABELS = Path(__file__).resolve().parent / "data" / "sfhq_labels.csv"
DONOR_FOLDER = "donors/synthetic_sfhq"
# stylised, glasses, sunglasses, strong expression, unfit texture (a crop with hair over the forehead is kept
# when its composed texture shows none: the composer leaves the upper forehead and the hair to the subject)
EXCLUDED_FLAGS = set("zgsec")
MAX_ANGLE = 20.0  # degrees of yaw or pitch


def read_labels(path: Path = LABELS) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def build(data: Path, output: Path, *, tex_size: int = 256, lighting_sigma: float = 16.0) -> dict:
    started = time.perf_counter()
    labels = [r for r in read_labels() if r["age"] in "tymo" and not set(r["flags"]) & EXCLUDED_FLAGS]
    mesh = default_mesh()
    atlas = UVAtlas(mesh.uvs, mesh.triangles, tex_size)
    marker = StillLandmarker()
    kept, textures, weights, shapes = [], [], [], []
    try:
        for row in labels:
            image = read_rgb(data / DONOR_FOLDER / row["file"])
            points = None if image is None else marker.largest(image)
            if points is None:
                continue
            yaw, pitch, _ = fit_pose(points, mesh.vertices, mesh.weights).yaw_pitch_roll()
            if max(abs(yaw), abs(pitch)) > MAX_ANGLE:
                continue
            unwrapped = atlas.unwrap(image, points)
            kept.append((row, image, points))
            textures.append(unwrapped.texture)
            weights.append(unwrapped.weight)
            shapes.append(canonical_shape(points, mesh.vertices, mesh.weights, neutral=False))  # its own eyes
    finally:
        marker.close()
    tex, wts = np.stack(textures), np.stack(weights)
    reference = (tex * wts[..., None]).sum(0) / np.maximum(wts.sum(0), 1e-6)[..., None]
    mouth = polygons_mask([mesh.uvs[InteriorContours.from_mediapipe().inner_lips] * tex_size],
                          (tex_size, tex_size), dilate_px=tex_size / 96) > 0
    albedo = np.stack([_mirror_filled(_fill(normalise_lighting(t, w, reference, lighting_sigma), mouth), w, atlas.mask)
                       for t, w in zip(tex, wts)])
    # over the whole face (hair, brows, eyes and lips too): about 21 degrees below the skin alone. A subject's skin
    # is measured in the frame's light, dimmer than the donors' studio light; matched skin to skin, light-skinned
    # people filmed in dim light drew dark donors (an ashen, grey face once toned)
    ita = np.array([skin_ita(a, atlas.mask & (w > 0.5)) for a, w in zip(albedo, wts)], np.float32)
    descriptors = _describe(kept)
    bank = DonorBank(
        albedo=(albedo * 255.0 + 0.5).astype(np.uint8), sex=np.array([r["sex"] for r, _, _ in kept]),
        age=np.array([AGE_BANDS.index(r["age"]) for r, _, _ in kept]), ita=ita, shapes=np.stack(shapes),
        descriptors=descriptors, names=np.array([r["file"] for r, _, _ in kept]))
    bank.save(output)
    provenance = {
        "built_by": "deidstream build-donors",
        "source": f"{DONOR_FOLDER} (SFHQ, MIT licence: synthetic faces)",
        "labels": f"{LABELS.name}: apparent sex and age band labelled by eye",
        "donors": len(bank), "female": int((bank.sex == "f").sum()), "male": int((bank.sex == "m").sum()),
        "selection": f"teens and adults (t/y/m/o), no flags {''.join(sorted(EXCLUDED_FLAGS))}, "
                     f"yaw and pitch within {MAX_ANGLE}°",
        "texture_size": tex_size, "lighting_sigma_texels": lighting_sigma, "jpeg_quality": 92,
        "file_bytes": output.stat().st_size, "build_seconds": round(time.perf_counter() - started, 1),
    }
    output.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def _fill(texture: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    import cv2

    u8 = np.clip(texture * 255.0 + 0.5, 0, 255).astype(np.uint8)
    filled = cv2.inpaint(u8, mouth.astype(np.uint8), 3, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
    return np.where(mouth[..., None], filled, texture)


def _mirror_filled(texture: np.ndarray, weight: np.ndarray, mask: np.ndarray, *, better: float = 0.1,
                   ramp: float = 0.2, sigma: float = 4.0) -> np.ndarray:
    """``texture`` with the outer cheek texels the photo saw at a more grazing angle than their mirror
    image taken from the other side of the face (the mesh's UV layout is symmetric: u ↔ 1 − u), in
    proportion to how much better that side saw them. A donor turned a little away shows one cheek edge
    foreshortened, stretched into streaks with the hair and background beside it, which a surrogate
    showed as dark smudges on the cheek of any subject turned the other way (portrait_s18, portrait_s32)."""
    import cv2

    size = texture.shape[0]
    seen = cv2.GaussianBlur(weight.astype(np.float32), (0, 0), sigma)  # the visibility is per triangle
    u = (np.arange(size, dtype=np.float32) + 0.5) / size
    outer = np.clip((np.abs(u - 0.5) - 0.2) / 0.08, 0.0, 1.0)[None, :]  # beyond the eyes: cheeks and temples
    gain = np.clip((seen[:, ::-1] - seen - better) / ramp, 0.0, 1.0) * outer * (mask & mask[:, ::-1])
    gain = cv2.GaussianBlur(gain.astype(np.float32), (0, 0), 2.0)[..., None]
    return texture * (1.0 - gain) + texture[:, ::-1] * gain


def _describe(kept: list[tuple[dict, np.ndarray, np.ndarray]]) -> np.ndarray:
    """The product's E_id of each donor, aligned by the landmarks its texture was unwrapped with."""
    from deidstream.tracking.eid import EidRecognizer

    recognizer = EidRecognizer()
    return np.concatenate([recognizer.describe_landmarks(image, [points]) for _, image, points in kept])


def run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="deidstream build-donors", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    p.add_argument("--output", type=Path, default=DEFAULT_DONORS, help="donor bank to write (.npz)")
    args = p.parse_args(argv)
    if not (args.data / DONOR_FOLDER).is_dir():
        print(f"deidstream build-donors: {args.data / DONOR_FOLDER}: not found (is --data the shared data folder?)",
              file=sys.stderr)
        return 1
    print(json.dumps(build(args.data, args.output), indent=2))
    return 0
