"""The identity space G_3d draws from: mesh, shape model, UV appearance model, donor facts.

One ``.npz`` file built by ``deidstream build-model`` (see :mod:`deidstream.modelbuild`) and
shipped in the package, so nothing is read from outside the installed package at run time.
w_id = (shape coefficients, appearance coefficients), both in units of their component's
standard deviation, so a random identity is a standard normal draw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from deidstream.errors import ConfigError
from deidstream.geometry.mesh import CanonicalMesh

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "g3d_default.npz"


@dataclass(frozen=True, slots=True)
class Identity:
    """w_id: ``shape`` (ks,) and ``appearance`` (ka,) coefficients in standard deviations."""

    shape: np.ndarray
    appearance: np.ndarray


@dataclass(frozen=True, slots=True, eq=False)
class FaceModel:
    """Shape: ``shape_mean`` (468, 3) cm, ``shape_basis`` (ks, 468, 3) = component × its std.
    Appearance: ``app_mean`` (T, T, 3) albedo in [0, 1] at the texture size T, ``app_basis``
    (ka, C, C, 3) = component × std at the (coarser or equal) component size C, ``tex_mask``
    (T, T) texels inside the UV layout. The albedo has the eye openings and mouth interior
    inpainted (a render keeps the subject's own there); ``open_mean`` (T, T, 3) is the donors'
    mean with them, for renders with no subject behind them (previews, identity checks).
    Donors: ``donor_descriptors`` (nd, 128) dlib descriptors of the synthetic faces the
    appearance came from (so a surrogate can be kept away from them), ``donor_coefficients``
    (nd, ka) their appearance coefficients,
    ``donor_attributes`` (nd, 3): P(female), age in years, skin ITA°;
    ``attribute_weights`` (2, 129): linear models on a dlib descriptor (bias last) for the logit
    of P(female) and for age, to label a subject the same way."""

    mesh: CanonicalMesh
    shape_mean: np.ndarray
    shape_basis: np.ndarray
    app_mean: np.ndarray
    app_basis: np.ndarray
    tex_mask: np.ndarray
    open_mean: np.ndarray
    donor_descriptors: np.ndarray
    donor_coefficients: np.ndarray
    donor_attributes: np.ndarray
    attribute_weights: np.ndarray
    provenance: dict

    @property
    def tex_size(self) -> int:
        return int(self.app_mean.shape[0])

    @property
    def n_shape(self) -> int:
        return int(self.shape_basis.shape[0])

    @property
    def n_appearance(self) -> int:
        return int(self.app_basis.shape[0])

    def random_identity(self, rng: np.random.Generator, *, spread: float = 1.0) -> Identity:
        return Identity(rng.standard_normal(self.n_shape).astype(np.float32) * spread,
                        rng.standard_normal(self.n_appearance).astype(np.float32) * spread)

    def mean_identity(self) -> Identity:
        return Identity(np.zeros(self.n_shape, np.float32), np.zeros(self.n_appearance, np.float32))

    def shape_of(self, identity: Identity) -> np.ndarray:
        """(468, 3) identity shape in canonical units."""
        return self.shape_mean + np.tensordot(identity.shape, self.shape_basis, axes=1)

    def albedo_of(self, identity: Identity) -> np.ndarray:
        """(T, T, 3) float32 albedo in [0, 1]: the mean plus the components (stored at C <= T,
        upsampled bilinearly with pixel centres aligned, as the torch generator's)."""
        detail = np.tensordot(identity.appearance.astype(np.float32), self.app_basis, axes=1)
        size = self.tex_size
        if detail.shape[0] != size:
            detail = cv2.resize(detail, (size, size), interpolation=cv2.INTER_LINEAR)
        return np.clip(self.app_mean + detail, 0.0, 1.0).astype(np.float32)

    def project_shape(self, shape: np.ndarray) -> np.ndarray:
        """Least-squares shape coefficients of a (468, 3) canonical-frame shape."""
        basis = self.shape_basis.reshape(self.n_shape, -1)
        coef, *_ = np.linalg.lstsq(basis.T, (shape - self.shape_mean).reshape(-1), rcond=None)
        return coef.astype(np.float32)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        scale = np.abs(self.app_basis).reshape(self.n_appearance, -1).max(1) / 127.0
        quantised = np.round(self.app_basis / scale[:, None, None, None]).astype(np.int8)
        np.savez_compressed(
            tmp, vertices=self.mesh.vertices, uvs=self.mesh.uvs, triangles=self.mesh.triangles,
            weights=self.mesh.weights, shape_mean=self.shape_mean.astype(np.float32),
            shape_basis=self.shape_basis.astype(np.float32), app_mean=self.app_mean.astype(np.float16),
            app_basis_q=quantised, app_basis_scale=scale.astype(np.float32), tex_mask=self.tex_mask,
            open_mean=self.open_mean.astype(np.float16),
            donor_descriptors=self.donor_descriptors.astype(np.float32),
            donor_coefficients=self.donor_coefficients.astype(np.float32),
            donor_attributes=self.donor_attributes.astype(np.float32),
            attribute_weights=self.attribute_weights.astype(np.float32),
            provenance=np.array(json.dumps(self.provenance)))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_MODEL) -> FaceModel:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: face model not found; build it with 'deidstream build-model'")
        with np.load(path) as z:
            mesh = CanonicalMesh(z["vertices"], z["uvs"], z["triangles"], z["weights"])
            basis = z["app_basis_q"].astype(np.float32) * z["app_basis_scale"][:, None, None, None]
            return cls(mesh=mesh, shape_mean=z["shape_mean"], shape_basis=z["shape_basis"],
                       app_mean=z["app_mean"].astype(np.float32), app_basis=basis, tex_mask=z["tex_mask"],
                       open_mean=z["open_mean"].astype(np.float32),
                       donor_descriptors=z["donor_descriptors"], donor_coefficients=z["donor_coefficients"],
                       donor_attributes=z["donor_attributes"],
                       attribute_weights=z["attribute_weights"],
                       provenance=json.loads(str(z["provenance"])))


@cache
def default_model() -> FaceModel:
    """The shipped model, loaded once per process."""
    return FaceModel.load(DEFAULT_MODEL)


def masked_lowpass(image: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass that ignores texels of zero weight (normalised convolution)."""
    w = weight.astype(np.float32)
    num = cv2.GaussianBlur(image * (w[..., None] if image.ndim == 3 else w), (0, 0), sigma)
    den = cv2.GaussianBlur(w, (0, 0), sigma)
    den = np.maximum(den, 1e-6)
    return num / (den[..., None] if image.ndim == 3 else den)


def normalise_lighting(texture: np.ndarray, weight: np.ndarray, reference: np.ndarray, sigma: float) -> np.ndarray:
    """Divide out a face's low-frequency luminance pattern relative to ``reference`` (the mean
    face's), keeping its overall colour: what is left is albedo detail under average light."""
    lum = texture.mean(axis=2)
    shading = masked_lowpass(lum, weight, sigma) / np.maximum(masked_lowpass(reference.mean(axis=2), weight, sigma),
                                                              1e-3)
    inside = weight > 0
    shading /= max(float(np.average(shading[inside], weights=weight[inside])), 1e-3) if inside.any() else 1.0
    return np.clip(texture / np.maximum(shading, 0.2)[..., None], 0.0, 1.0)


def skin_ita(albedo: np.ndarray, mask: np.ndarray) -> float:
    """Individual typology angle (degrees) of the skin: higher is lighter (Chardon et al. 1991)."""
    region = masked_lowpass(albedo, mask.astype(np.float32), 4.0)[mask]
    lab = cv2.cvtColor(region.reshape(1, -1, 3).astype(np.float32), cv2.COLOR_RGB2LAB).reshape(-1, 3)
    lightness, b = float(np.median(lab[:, 0])), float(np.median(lab[:, 2]))
    return float(np.degrees(np.arctan2(lightness - 50.0, b)))
