"""Which donors a person's surrogate is drawn from, fixed by the key and the person's face alone.

A person's surrogate must not depend on the order people appear in a run: with the same key, the same
person should get the same surrogate in every file and every run, two different people different ones, and
another key should draw others, with nothing stored between runs. So the order in which the lock
tries donors is a keyed function of the person's E_id embedding, continuous in it: each donor has a
code drawn from the key (HMAC-SHA256 seeds a Gaussian, 128-D like the embedding), and a person ranks
donors by the code's projection on the direction of their embedding from the donors' mean face.

Two looks at one person lie a few tenths apart, two people about 0.8 (unrelated directions): the same
person's rankings nearly agree, two people's are unrelated, and without the key the ranking cannot be
reproduced. How often a person then gets one surrogate in two runs, and another under another key, is
measured by benchmarks/bench_keyed.py (the verification at τ and the few donors that fit a person well
decide the rest).
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np

from deidstream.errors import ConfigError


def _codes(key: bytes, donors: int, dims: int, attempt: int) -> np.ndarray:
    digest = hmac.new(key, f"deidstream-donor-codes:{attempt}".encode(), hashlib.sha256).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little")).standard_normal((donors, dims))


class KeyedOrder:
    """Ranks donors for a person by a keyed, continuous function of their embedding (see above).

    ``centre``: the mean E_id of the donors (the direction of a face is taken from it); ``donors``: how many
    donors there are. ``attempt`` draws another set of codes (a second search for a person whose first
    found no surrogate), still fixed by the key.
    """

    def __init__(self, key: bytes, centre: np.ndarray, donors: int) -> None:
        if not key:
            raise ConfigError("the identity key must not be empty")
        self._key = key
        self._centre = np.asarray(centre, np.float64)
        self._donors = donors
        self._cache: dict[int, np.ndarray] = {}

    def __repr__(self) -> str:  # never show the key
        return f"KeyedOrder(donors={self._donors})"

    def affinity(self, embedding: np.ndarray, attempt: int = 0) -> np.ndarray:
        """(donors,) how strongly the key ties this face to each donor: higher first."""
        codes = self._cache.get(attempt)
        if codes is None:
            codes = self._cache[attempt] = _codes(self._key, self._donors, len(self._centre), attempt)
        direction = np.asarray(embedding, np.float64) - self._centre
        norm = float(np.linalg.norm(direction))
        return codes @ (direction / norm if norm > 1e-9 else direction)

    def rank(self, embedding: np.ndarray, pool: np.ndarray, attempt: int = 0) -> list[int]:
        """The donors of ``pool`` in the order this face tries them."""
        pool = np.asarray(pool, np.int64)
        score = self.affinity(embedding, attempt)[pool]
        return [int(d) for d in pool[np.argsort(-score, kind="stable")]]
