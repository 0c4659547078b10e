"""The keyed donor order: the same face under the same key ranks donors the same way in any run, a
nearby look of it nearly so, another face or another key differently; the key never shows."""

from __future__ import annotations

import numpy as np
import pytest

from deidstream.engine.keyed_order import KeyedOrder
from deidstream.errors import ConfigError

DONORS = 126
POOL = np.arange(0, DONORS, 2)  # 63 donors matched on attributes


@pytest.fixture(scope="module")
def faces():
    """40 people 0.6 from the donors' mean face (unrelated directions), as real embeddings lie."""
    rng = np.random.default_rng(7)
    centre = rng.normal(0, 0.1, 128)
    directions = rng.normal(size=(40, 128))
    people = centre + 0.6 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    return centre, people, rng


def another_look(face, rng, apart):
    step = rng.normal(size=face.shape)
    return face + apart * step / np.linalg.norm(step)


def test_the_same_face_and_key_give_the_same_order_in_any_run(faces):
    centre, people, _ = faces
    first = KeyedOrder(b"archive key", centre, DONORS).rank(people[0], POOL)
    again = KeyedOrder(b"archive key", centre, DONORS).rank(people[0].copy(), POOL)
    assert first == again and sorted(first) == sorted(POOL.tolist())


def test_another_look_at_a_person_keeps_their_first_donors(faces):
    """Two track means of one person lie 0.1-0.2 apart: the donors tried first stay the same."""
    centre, people, rng = faces
    order = KeyedOrder(b"archive key", centre, DONORS)
    same_first, overlap = [], []
    for face in people:
        a, b = order.rank(face, POOL), order.rank(another_look(face, rng, 0.15), POOL)
        same_first.append(a[0] == b[0])
        overlap.append(len(set(a[:24]) & set(b[:24])) / 24)
    assert np.mean(same_first) >= 0.6 and np.mean(overlap) >= 0.85


def test_different_people_and_different_keys_rank_differently(faces):
    centre, people, _ = faces
    one, two = KeyedOrder(b"archive key", centre, DONORS), KeyedOrder(b"other key", centre, DONORS)
    firsts = [one.rank(face, POOL)[0] for face in people]
    assert len(set(firsts)) >= 20  # 40 people spread over the 63 donors, not all on a few
    overlap = [len(set(one.rank(f, POOL)[:24]) & set(two.rank(f, POOL)[:24])) / 24 for f in people]
    assert np.mean(overlap) < 0.55  # chance: 24 of 63
    assert one.rank(people[0], POOL, attempt=1) != one.rank(people[0], POOL)  # a second search, other donors


def test_the_key_is_required_and_never_shown(faces):
    centre, _, _ = faces
    assert "secret" not in repr(KeyedOrder(b"secret", centre, DONORS))
    with pytest.raises(ConfigError):
        KeyedOrder(b"", centre, DONORS)
