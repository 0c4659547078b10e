"""The natural identity space: real textures of synthetic donor faces, unwrapped onto the face mesh.

A surrogate is assembled from donors (:mod:`deidstream.engine.generator.compose`), never from a
statistical reconstruction: every texel it shows is a texel some synthetic face has, so it looks like
skin, brows, lips and eyes, not like a smooth mean or a painted pattern. The donors are SFHQ's synthetic
faces (MIT), labelled by eye for apparent sex and age band, so a surrogate is nobody real and can keep
its subject's apparent sex and age. Built by ``deidstream build-donors`` (provenance beside the file).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from deidstream.config import AGE_BAND_YEARS

DEFAULT_DONORS = Path(__file__).resolve().parent / "models" / "donors.npz"
AGE_BANDS = "".join(AGE_BAND_YEARS)  # child, teen, young adult, middle-aged, older


class JpegTextures:
    """Donor textures as the bank file keeps them (JPEG) and decoded on first use, indexed like an (n, T, T, 3)
    uint8 array: a lock renders a few donors (decoding all 126 takes 0.06 s)."""

    def __init__(self, jpeg: np.ndarray, offsets: np.ndarray) -> None:
        self._jpeg, self._offsets = jpeg, offsets
        self._decoded: dict[int, np.ndarray] = {}
        first = self[0]
        self.shape = (len(offsets) - 1, *first.shape)
        self.dtype = first.dtype

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        i = int(i)
        if i not in self._decoded:  # two threads may both decode one texture: the same pixels either way
            a, b = self._offsets[i], self._offsets[i + 1]
            self._decoded[i] = cv2.cvtColor(cv2.imdecode(self._jpeg[a:b], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return self._decoded[i]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


@dataclass(frozen=True, slots=True)
class DonorBank:
    """``albedo`` (n, T, T, 3) uint8 lighting-normalised UV textures with each donor's own eyes (mouth
    interior inpainted from the lips around it); ``sex`` (n,) 'f'/'m'; ``age`` (n,) index into
    ``AGE_BANDS``; ``ita`` (n,) skin ITA°; ``shapes`` (n, 468, 3) pose-normalised shapes; ``descriptors``
    (n, 128) E_id of each donor photo (a surrogate must not be a donor either); ``source``: the file it was
    loaded from, if any (what is derived from it may be cached under its name)."""

    albedo: np.ndarray | JpegTextures
    sex: np.ndarray
    age: np.ndarray
    ita: np.ndarray
    shapes: np.ndarray
    descriptors: np.ndarray
    names: np.ndarray
    source: Path | None = None

    def __len__(self) -> int:
        return int(self.albedo.shape[0])

    def texture(self, i: int) -> np.ndarray:
        """Donor ``i``'s albedo as float32 in [0, 1]."""
        return self.albedo[i].astype(np.float32) * np.float32(1.0 / 255.0)

    def save(self, path: str | Path, quality: int = 92) -> None:
        """Textures as JPEG (a few MB for a few hundred donors), the rest as arrays."""
        encoded = [cv2.imencode(".jpg", cv2.cvtColor(a, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
                   for a in self.albedo]
        offsets = np.cumsum([0] + [len(e) for e in encoded])
        np.savez(path, jpeg=np.concatenate(encoded).astype(np.uint8), offsets=offsets, sex=self.sex, age=self.age,
                 ita=self.ita.astype(np.float32), shapes=self.shapes.astype(np.float16),
                 descriptors=self.descriptors.astype(np.float32), names=self.names)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_DONORS) -> DonorBank:
        with np.load(path) as z:
            return cls(JpegTextures(z["jpeg"], z["offsets"]), z["sex"], z["age"].astype(np.int64), z["ita"],
                       z["shapes"].astype(np.float32), z["descriptors"], z["names"], Path(path).resolve())


@cache
def default_donors() -> DonorBank:
    return DonorBank.load(DEFAULT_DONORS)
