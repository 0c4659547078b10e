"""What every donor's surrogate would be for a face the generator makes: the table M_c learns from.

The paper trains its mapper on faces its generator synthesises; so does this. A training subject is a
synthetic SFHQ photo, or the generator's render of one donor into another photo's face (its pose, light,
hair and outline: a new synthetic face). For each subject every donor of its apparent sex is rendered into
its view as the lock would (toned to its skin, the shape part donor's, its light), and the render's E_id
distance to the subject, apparent sex and age and the skin tone a viewer reads on it are kept. Nothing real is
in the table: the real shared faces only validate.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from deidstream.types import FaceView

log = logging.getLogger(__name__)
DONOR_FOLDER = "donors/synthetic_sfhq"
FACE_PX = 180  # a subject's face is scaled to about this wide: the faces the lock sees in videos are 80-300 px


@dataclass(frozen=True, slots=True)
class MapperTable:
    """Per subject (S): ``embedding`` (S, 128), ``female``/``age`` as the attribute model reads them, ``ita``
    of their skin (NaN unread), ``hair`` (S, 2) upper lip and chin against the skin (NaN unread); per subject and
    donor (S, D), NaN where the donor is not of the subject's apparent sex: ``distance`` of the render to
    the subject, its ``out_female``/``out_age`` and ``tone_off`` (ITA° of its mid-face against theirs)."""

    embedding: np.ndarray
    female: np.ndarray
    age: np.ndarray
    ita: np.ndarray
    hair: np.ndarray
    distance: np.ndarray
    out_female: np.ndarray
    out_age: np.ndarray
    tone_off: np.ndarray
    sources: np.ndarray

    def save(self, path: Path) -> None:
        np.savez_compressed(path, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: Path) -> MapperTable:
        with np.load(path, allow_pickle=False) as z:
            return cls(**{k: z[k] for k in cls.__dataclass_fields__})


def _scaled(image: np.ndarray, points: np.ndarray) -> FaceView:
    from deidstream.tracking.people import face_view

    f = FACE_PX / max(float(np.ptp(points[:, 0])), 1.0)
    if f < 1.0:
        image = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        points = points * np.float32(f)
    return face_view(image, points)


def photo_views(data: Path, limit: int = 0) -> list[tuple[str, FaceView]]:
    """The SFHQ photos' faces (every crop with a face, labelled unfit or not: they are subjects here)."""
    from deidstream.modelbuild.collect import StillLandmarker, image_files, read_rgb

    marker = StillLandmarker()
    views = []
    try:
        for path in image_files(data / DONOR_FOLDER)[: limit or None]:
            image = read_rgb(path)
            points = None if image is None else marker.largest(image)
            if points is not None:
                views.append((path.name, _scaled(image, points)))
    finally:
        marker.close()
    return views


def _locker():
    from deidstream.config import GeneratorConfig, LockConfig
    from deidstream.engine.generator.compose import default_composer
    from deidstream.engine.generator.face_render import make_renderer
    from deidstream.engine.natural_lock import NaturalLocker
    from deidstream.pipelines.locking import subject_attributes
    from deidstream.tracking.eid import EidRecognizer

    return NaturalLocker(make_renderer(GeneratorConfig()), default_composer(), EidRecognizer(), b"table",
                         subject_attributes, LockConfig())


def synthesised(locker, photos: list[tuple[str, FaceView]], seed: int) -> list[tuple[str, FaceView]]:
    """Each photo's face re-rendered as a random donor of its apparent sex: new synthetic faces."""
    from deidstream.engine.generator.aux import canonical_shape
    from deidstream.engine.generator.compose import Recipe
    from deidstream.engine.lock import face_chip

    rng, bank, mesh = np.random.default_rng(seed), locker.composer.bank, locker._mesh
    out = []
    for name, view in photos:
        emb = locker.recognizer.describe_chips([face_chip(locker.recognizer, view.image, view.points)])[0]
        female = float(locker.attributes(np.asarray(emb, np.float32)[None])[0][0]) >= 0.5
        donor = int(rng.choice(np.flatnonzero(bank.sex == ("f" if female else "m"))))
        shape = canonical_shape(view.points, mesh.vertices, mesh.weights)
        surrogate = locker.surrogate(Recipe(donor), locker.composer.tone_of([view]), shape)
        image = view.image.copy()
        locker.renderer.paint(image, view.points, shape, surrogate, source=view.image)
        out.append((f"{bank.names[donor]} in {name}", FaceView(image, view.points)))
    return out


def _judge_rows(views: list[FaceView]) -> list[dict[str, np.ndarray]]:
    """One row per view: the subject read and every same-sex donor judged in their view (a worker's share)."""
    import torch

    from deidstream.engine.generator.aux import canonical_shape
    from deidstream.engine.lock import face_chip

    torch.set_num_threads(1)
    locker = _locker()
    bank, mesh = locker.composer.bank, locker._mesh
    rows = []
    for view in views:
        emb = locker.recognizer.describe_chips([face_chip(locker.recognizer, view.image, view.points)])[0]
        p_female, years = locker.attributes(np.asarray(emb, np.float32)[None])
        tone = locker.composer.tone_of([view])
        pool = [int(d) for d in np.flatnonzero(bank.sex == ("f" if p_female[0] >= 0.5 else "m"))]
        shape = canonical_shape(view.points, mesh.vertices, mesh.weights)
        judged = locker._judge(pool, tone, shape, emb, [view], np.zeros((0, 128), np.float32), False)
        row = {k: np.full(len(bank), np.nan, np.float32) for k in ("distance", "out_female", "out_age", "tone_off")}
        for d, j in zip(pool, judged):
            row["distance"][d], row["out_female"][d], row["out_age"][d] = j.distance, j.female, j.age
            row["tone_off"][d] = j.tone_off
        hair = tone.hair if tone is not None and tone.hair is not None else np.full(2, np.nan)
        rows.append({**row, "embedding": np.asarray(emb, np.float32), "female": np.float32(p_female[0]),
                     "age": np.float32(years[0]), "ita": np.float32(np.nan if tone is None else tone.ita),
                     "hair": np.asarray(hair, np.float32)})
    return rows


def video_views(data: Path, frames: int = 2) -> list[tuple[str, FaceView]]:
    """The largest face on ``frames`` frames of every shared video: real people, to validate on only."""
    from deidstream.modelbuild.collect import StillLandmarker, video_samples

    marker = StillLandmarker()
    try:
        return [(s.source, _scaled(s.image, s.points)) for path in sorted((data / "videos").glob("*.mp4"))
                for s in video_samples(marker, path, frames=frames, every=40)]
    finally:
        marker.close()


def judge(subjects: list[tuple[str, FaceView]], workers: int) -> MapperTable:
    """Every same-sex donor judged in each subject's view, by ``workers`` processes."""
    shares = [[v for _, v in subjects[i::workers]] for i in range(workers)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        parts = pool.map(_judge_rows, shares)
    rows: list = [None] * len(subjects)
    for i, part in enumerate(parts):
        rows[i::workers] = part
    return MapperTable(**{k: np.stack([r[k] for r in rows]) for k in rows[0]},
                       sources=np.array([s for s, _ in subjects]))


def build_table(data: Path, *, workers: int = 2, limit: int = 0, seed: int = 0) -> tuple[MapperTable, dict]:
    """The table over the SFHQ photos and as many synthesised faces, judged by ``workers`` processes."""
    started = time.perf_counter()
    photos = photo_views(data, limit)
    mixed = synthesised(_locker(), photos, seed)
    log.info("%d photos, %d synthesised faces", len(photos), len(mixed))
    table = judge(photos + mixed, workers)
    provenance = {"subjects": len(photos) + len(mixed), "photos": len(photos), "synthesised": len(mixed),
                  "source": DONOR_FOLDER + " (SFHQ, MIT): photos, and renders of one donor into another photo",
                  "pairs_judged": int(np.isfinite(table.distance).sum()), "face_px": FACE_PX, "workers": workers,
                  "seconds": round(time.perf_counter() - started, 1)}
    return table, provenance
