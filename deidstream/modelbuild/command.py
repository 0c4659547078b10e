"""``deidstream build-model``: build the shipped face model from the shared data folder.

Shape statistics come from real faces (pose-normalised landmark shapes: only means and
principal components are kept); appearance comes from synthetic donors only, so a surrogate
drawn from it is nobody real. The provenance (data, face counts, variance explained) is
written into the model and next to it as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from deidstream.engine.generator.facemodel import DEFAULT_MODEL, FaceModel, skin_ita
from deidstream.engine.generator.uvmap import UVAtlas
from deidstream.errors import DeidstreamError
from deidstream.geometry.mesh import CanonicalMesh
from deidstream.modelbuild.attributes import describe_largest
from deidstream.modelbuild.calibrate import calibrate_depth
from deidstream.modelbuild.collect import Sample, StillLandmarker, still_samples, video_samples
from deidstream.modelbuild.spaces import appearance_space, frontal, shape_space, unwrap_all
from deidstream.tracking.attributes import AttributeModel

log = logging.getLogger(__name__)
MESH_FILE = "face_geometry/geometry_pipeline_metadata_landmarks.pbtxt"
SHAPE_SOURCES = (  # (folder under the data root, how a person is named)
    ("identities/johns_5x11", "folder"), ("identities/orl_40x10", "folder"), ("identities/cmu_multiview_20", "folder"),
    ("donors/lfw_2000", "folder"),  # LFW: shape statistics only (its README allows it); UTKFace only evaluates
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deidstream build-model", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    p.add_argument("--donors", action="append", default=None,
                   help="donor folder(s) under --data for the appearance space (default donors/synthetic_sfhq)")
    p.add_argument("--output", type=Path, default=DEFAULT_MODEL, help="model file to write (.npz)")
    p.add_argument("--tex-size", type=int, default=256, help="albedo texture size (texels)")
    p.add_argument("--component-size", type=int, default=128, help="size the appearance components are stored at")
    p.add_argument("--appearance-variance", type=float, default=0.95)
    p.add_argument("--max-appearance", type=int, default=120)
    p.add_argument("--shape-variance", type=float, default=0.98)
    p.add_argument("--max-shape", type=int, default=40)
    p.add_argument("--video-frames", type=int, default=8, help="frames per shared video for the shape space")
    p.add_argument("--limit", type=int, default=0, help="at most this many images per folder (quick builds)")
    p.add_argument("--lighting-sigma", type=float, default=16.0, help="low-pass (texels) divided out as lighting")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="deidstream build-model: %(message)s")
    try:
        provenance = build(args)
    except (DeidstreamError, FileNotFoundError) as exc:
        print(f"deidstream build-model: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(provenance, indent=2))
    return 0


def build(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    data: Path = args.data
    if not (data / MESH_FILE).is_file():
        raise FileNotFoundError(f"{data / MESH_FILE}: mesh metadata not found (is --data the shared data folder?)")
    mesh = CanonicalMesh.from_metadata(data / MESH_FILE)
    marker = StillLandmarker()
    try:
        shape_faces = _shape_samples(marker, data, args)
        donor_dirs = args.donors or ["donors/synthetic_sfhq"]
        donors = [s for d in donor_dirs for s in still_samples(marker, data / d, person_from="file", limit=args.limit)]
    finally:
        marker.close()
    shape_faces = [s for s in shape_faces if frontal(s, mesh, 25.0)]
    shape = shape_space(shape_faces, mesh, variance=args.shape_variance, max_components=args.max_shape)

    frontal_donors = [s for s in donors if frontal(s, mesh, 20.0)]
    atlas = UVAtlas(mesh.uvs, mesh.triangles, args.tex_size)
    textures = unwrap_all(frontal_donors, atlas, sigma=args.lighting_sigma)
    app_mean, appearance = appearance_space(
        textures, atlas.mask, variance=args.appearance_variance, max_components=args.max_appearance,
        component_size=args.component_size)

    from deidstream.tracking.eid import EidRecognizer

    recognizer = EidRecognizer()
    attributes = AttributeModel.load()  # fitted on the SFHQ hand labels only (tracking/models/attributes.json)
    described = [(describe_largest(recognizer, s.image), i) for i, s in enumerate(frontal_donors)]
    kept = [(d, i) for d, i in described if d is not None]
    descriptors = np.array([d for d, _ in kept], np.float32).reshape(-1, 128)
    ita = np.array([skin_ita(textures.albedo[i], atlas.mask & (textures.weight[i] > 0.5)) for _, i in kept])
    donor_attributes = np.column_stack([attributes.predict(descriptors), ita]) if kept else np.zeros((0, 3))

    provenance = {
        "built_by": "deidstream build-model",
        "mesh": f"{MESH_FILE} (MediaPipe, Apache-2.0): 468 vertices, {len(mesh.triangles)} triangles",
        "shape": {"sources": [s for s, _ in SHAPE_SOURCES] + ["videos/*.mp4|mov"],
                  "faces": len(shape_faces), "people": shape.samples, "components": int(shape.basis.shape[0]),
                  "variance_explained": round(shape.explained, 4),
                  "note": "real faces; only the mean shape and principal components are kept"},
        "appearance": {"sources": donor_dirs, "faces_found": len(donors), "frontal_faces_used": len(frontal_donors),
                       "components": int(appearance.basis.shape[0]),
                       "variance_explained": round(appearance.explained, 4), "texture_size": args.tex_size,
                       "component_size": args.component_size, "lighting_sigma_texels": args.lighting_sigma,
                       "note": "synthetic faces only; lighting normalised (low-frequency luminance divided out)"},
        "donor_descriptors": {"faces": len(kept), "model": "dlib_face_recognition_resnet_model_v1 (synthetic donors)"},
        "attributes": {"source": "deidstream/tracking/models/attributes.npz: fitted on hand labels of the synthetic "
                                 "SFHQ donors only (see its JSON)"},
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    model = FaceModel(
        mesh=mesh, shape_mean=shape.mean.reshape(468, 3), shape_basis=shape.basis.reshape(-1, 468, 3),
        app_mean=app_mean, app_basis=appearance.basis, tex_mask=atlas.mask, open_mean=textures.open_mean,
        donor_descriptors=descriptors, donor_coefficients=appearance.coefficients[[i for _, i in kept]],
        donor_attributes=donor_attributes, attribute_weights=attributes.weights,
        provenance=provenance)
    model, calibration = calibrate_depth(model)
    provenance["shape"]["depth_calibration"] = calibration
    provenance["build_seconds"] = round(time.perf_counter() - started, 1)
    model.save(args.output)
    args.output.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def _shape_samples(marker: StillLandmarker, data: Path, args: argparse.Namespace) -> list[Sample]:
    samples: list[Sample] = []
    for folder, person_from in SHAPE_SOURCES:
        if (data / folder).is_dir():
            found = list(still_samples(marker, data / folder, person_from=person_from, limit=args.limit))
            log.info("%s: %d faces", folder, len(found))
            samples += found
    videos = sorted(p for p in (data / "videos").glob("*") if p.suffix in (".mp4", ".mov"))
    for path in videos[: args.limit or None]:
        found = list(video_samples(marker, path, frames=args.video_frames))
        log.info("%s: %d faces", path.name, len(found))
        samples += found
    # Keep the images light: the shape space needs only the points.
    return [Sample(s.person, s.source, np.zeros((1, 1, 3), np.uint8), s.points) for s in samples]
