"""M_c: where each donor's surrogate would land from a person in E_id, in one forward pass.

The paper's M_c maps (z_id, z_at) to a generator latent at E_id distance τ from the subject (L_de-id =
|τ − ‖E_id(X) − E_id(X')‖|). Here the generator's identity space is the bank of synthetic donors (a surrogate is one
donor's texture and shape, toned to the subject's skin and drawn in their pose, light and expression), a discrete
space, so M_c predicts, for the subject's E_id embedding z_id and attributes z_at (apparent sex and age, skin
tone, facial hair), the E_id distance ‖E_id(X) − E_id(X')‖ of every donor's render X' into the subject's face X.
The lock then ranks donors by the paper's trade-off on those predictions (distance at τ, attributes kept), the
key breaking near-ties, and renders only the first few to verify: one pass of a small network instead of
rendering two dozen candidates.

The network is small (a few hundred kB of float32) and runs in numpy at lock time
(:meth:`IdentityMapper.distances`): deterministic, continuous in z_id, nothing stored between runs;
:class:`deidstream.networks.mapper_net.MapperNet` is the same function in torch, what ``build-mapper`` trains
and ``export`` traces (apart, so that a run never imports torch for it). Weights:
``models/mapper.npz``, built by ``deidstream build-mapper`` from renders of synthetic faces only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deidstream.errors import ConfigError

DEFAULT_MAPPER = Path(__file__).resolve().parent / "models" / "mapper.npz"
LAYERS = 3  # subject MLP: (in → hidden → hidden → code)
SCALE = 2.0  # a subject's embedding enters as 2 × (z_id − the donors' mean face): unit-sized
FEATURES = 128 + 6


def subject_features(embedding: np.ndarray, centre: np.ndarray, female: np.ndarray, age: np.ndarray,
                     ita: np.ndarray, hair: np.ndarray) -> np.ndarray:
    """(n, 128 + 6) the network's view of subjects: their embedding against the donors' mean face (× ``SCALE``),
    then P(female), age / 50, ITA° / 50 and whether it was read, facial hair / 20 (unread: 0)."""
    direction = (np.asarray(embedding, np.float32) - centre) * SCALE
    ita = np.asarray(ita, np.float32)
    read = np.isfinite(ita)
    attrs = np.column_stack([female, np.asarray(age, np.float32) / 50.0, np.where(read, ita, 0.0) / 50.0,
                             read.astype(np.float32), np.nan_to_num(np.asarray(hair, np.float32), nan=0.0) / 20.0])
    return np.concatenate([direction, attrs.astype(np.float32)], axis=-1)


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


@dataclass(frozen=True, slots=True)
class IdentityMapper:
    """The trained M_c: ``weights``/``biases`` of the subject network, ``donor_codes`` (D, C) and ``donor_points``
    (D, 128, their E_id descriptors) one per donor of ``names`` (the bank it was trained on), ``centre`` the
    donors' mean E_id, ``affine`` (a, b): a render's distance is a + b × the subject's distance to its donor, plus
    what the codes add."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    donor_codes: np.ndarray
    donor_points: np.ndarray
    centre: np.ndarray
    affine: np.ndarray
    names: np.ndarray
    provenance: dict

    def __repr__(self) -> str:
        return f"IdentityMapper(donors={len(self.names)})"

    @classmethod
    def load(cls, path: Path = DEFAULT_MAPPER) -> IdentityMapper:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no M_c weights (build them with `deidstream build-mapper`)")
        with np.load(path, allow_pickle=False) as z:
            return cls(tuple(z[f"w{i}"] for i in range(LAYERS)), tuple(z[f"b{i}"] for i in range(LAYERS)),
                       z["donor_codes"], z["donor_points"], z["centre"], z["affine"], z["names"],
                       json.loads(str(z["provenance"])))

    def save(self, path: Path) -> None:
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)} | {f"b{i}": b for i, b in enumerate(self.biases)}
        np.savez(path, **arrays, donor_codes=self.donor_codes, donor_points=self.donor_points, centre=self.centre,
                 affine=self.affine, names=self.names, provenance=np.array(json.dumps(self.provenance)))

    def fits(self, names: np.ndarray) -> bool:
        """Whether it was trained on this bank (a rebuilt bank needs a retrained mapper)."""
        return len(names) == len(self.names) and bool(np.all(np.asarray(names) == self.names))

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(n, D): the predicted E_id distance from each subject of each donor's surrogate rendered into them."""
        x = np.asarray(features, np.float32)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = _silu(x)
        subject = self.centre + np.asarray(features, np.float32)[:, :128] / SCALE
        apart = np.sqrt(((subject[:, None, :] - self.donor_points[None]) ** 2).sum(-1))
        return self.affine[0] + self.affine[1] * apart + x @ self.donor_codes.T / np.sqrt(self.donor_codes.shape[1])
