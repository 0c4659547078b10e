"""M_c in torch: what ``deidstream build-mapper`` trains and ``deidstream export`` traces. Kept apart from
:mod:`deidstream.networks.mapper`, whose numpy form the engine runs, so that a run does not import torch
(about 1.3 s of every command's start-up)."""

from __future__ import annotations

import numpy as np
import torch

from deidstream.networks.mapper import FEATURES, SCALE, IdentityMapper


class MapperNet(torch.nn.Module):
    """M_c in torch: trained with ``codes`` and ``affine`` as parameters, or loaded from an :class:`IdentityMapper`
    (:meth:`from_mapper`) to be traced; :meth:`to_mapper` gives the engine's numpy form."""

    def __init__(self, points: np.ndarray, centre: np.ndarray, hidden: int, code: int) -> None:
        super().__init__()
        self.subject = torch.nn.Sequential(
            torch.nn.Linear(FEATURES, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
            torch.nn.Linear(hidden, code))
        self.codes = torch.nn.Parameter(torch.randn(len(points), code) * 0.1)
        self.affine = torch.nn.Parameter(torch.tensor([0.2, 0.8]))
        self.register_buffer("points", torch.from_numpy(np.asarray(points, np.float32)))
        self.register_buffer("centre", torch.from_numpy(np.asarray(centre, np.float32)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(n, D) predicted distances, as :meth:`IdentityMapper.distances`."""
        subject = self.centre + features[:, :128] / SCALE
        apart = ((subject[:, None, :] - self.points[None]) ** 2).sum(-1).clamp_min(1e-12).sqrt()
        learned = self.subject(features) @ self.codes.T / self.codes.shape[1] ** 0.5
        return self.affine[0] + self.affine[1] * apart + learned

    def _linears(self) -> list[torch.nn.Linear]:
        return [m for m in self.subject if isinstance(m, torch.nn.Linear)]

    @classmethod
    def from_mapper(cls, mapper: IdentityMapper) -> MapperNet:
        net = cls(mapper.donor_points, mapper.centre, mapper.weights[0].shape[1], mapper.donor_codes.shape[1])
        with torch.no_grad():
            for layer, w, b in zip(net._linears(), mapper.weights, mapper.biases):
                layer.weight.copy_(torch.from_numpy(w.T.copy()))
                layer.bias.copy_(torch.from_numpy(b))
            net.codes.copy_(torch.from_numpy(mapper.donor_codes))
            net.affine.copy_(torch.from_numpy(mapper.affine))
        return net

    def to_mapper(self, names: np.ndarray, provenance: dict | None = None) -> IdentityMapper:
        with torch.no_grad():
            return IdentityMapper(tuple(m.weight.T.numpy().copy() for m in self._linears()),
                                  tuple(m.bias.numpy().copy() for m in self._linears()), self.codes.numpy().copy(),
                                  self.points.numpy().copy(), self.centre.numpy().copy(), self.affine.numpy().copy(),
                                  np.asarray(names), provenance or {})
