"""M_c on the shipped sample's woman: one forward pass predicts where every donor's surrogate would land from her,
the lock renders only the first few of its order and verifies them; her face and the key alone decide it (not her
place in the run), another key another woman, and what it proposes keeps her apparent sex, verified at τ."""

from __future__ import annotations

import numpy as np
import pytest

from deidstream.config import GeneratorConfig, LockConfig
from deidstream.engine.generator.compose import default_composer
from deidstream.engine.generator.face_render import make_renderer
from deidstream.engine.natural_lock import NaturalLocker
from deidstream.errors import ConfigError
from deidstream.networks.mapper import IdentityMapper, subject_features
from deidstream.pipelines.locking import subject_attributes, trained_mapper

KEYS = (b"key one", b"key two", b"key three", b"key four", b"key five", b"key six")


@pytest.fixture(scope="module")
def subject(sample_subject):
    return sample_subject


@pytest.fixture(scope="module")
def mapper() -> IdentityMapper:
    return trained_mapper(default_composer().bank.names)


def mapped_locker(recognizer, key: bytes, tau: float = 0.7, mapped_round: int = 1) -> NaturalLocker:
    composer = default_composer()
    return NaturalLocker(make_renderer(GeneratorConfig()), composer, recognizer, key, subject_attributes,
                         LockConfig(tau=tau, mapped_round=mapped_round), mapper=trained_mapper(composer.bank.names))


def test_the_shipped_weights_fit_the_shipped_bank_and_record_their_provenance(mapper, tmp_path):
    bank = default_composer().bank
    assert mapper.fits(bank.names) and not mapper.fits(bank.names[::-1])
    assert mapper.donor_codes.shape[0] == len(bank)
    training = mapper.provenance["training"]
    assert training["subjects_trained"] >= 500 and training["losses"] and "validation" in training
    with pytest.raises(ConfigError, match="build-mapper"):
        IdentityMapper.load(tmp_path / "none.npz")


def test_its_predictions_follow_what_rendering_measures(subject, mapper):
    """M_c's predicted distance for donors rendered into her views against the distance E_id measures on the
    renders: close (the lock only renders what it predicts passes)."""
    recognizer, embedding, views = subject
    locker = mapped_locker(recognizer, b"key one")
    bank = locker.composer.bank
    female, age = (float(a[0]) for a in subject_attributes(np.asarray(embedding, np.float32)[None]))
    tone = locker.composer.tone_of(views)
    features = subject_features(embedding[None], mapper.centre, np.array([female]), np.array([age]),
                                np.array([tone.ita]), tone.hair[None])
    women = [int(d) for d in np.flatnonzero(bank.sex == "f")][:12]
    predicted = mapper.distances(features)[0][women]
    from deidstream.engine.generator.aux import canonical_shape

    mesh = locker.renderer.model.mesh
    shape = canonical_shape(views[0].points, mesh.vertices, mesh.weights)
    judged = locker._judge(women, tone, shape, embedding, views[:1], np.zeros((0, 128), np.float32), False)
    measured = np.array([j.distance for j in judged])
    assert np.abs(predicted - measured).mean() < 0.1
    assert np.corrcoef(predicted, measured)[0, 1] > 0.5


def test_her_order_is_continuous_in_her_face_and_another_key_moves_it(subject):
    recognizer, embedding, views = subject
    locker = mapped_locker(recognizer, b"key one")
    female, age = (float(a[0]) for a in subject_attributes(np.asarray(embedding, np.float32)[None]))
    tone = locker.composer.tone_of(views)
    first = locker._mapped_order(embedding, female, age, tone)
    rng = np.random.default_rng(0)
    moved = [locker._mapped_order(embedding + rng.normal(0, 0.1 / np.sqrt(128), 128).astype(np.float32), female,
                                  age, tone)[0] for _ in range(10)]  # another look at her: 0.1 away
    assert moved.count(first[0]) >= 8
    assert all(default_composer().bank.sex[d] == "f" for d in first)
    firsts = {mapped_locker(recognizer, key)._mapped_order(embedding, female, age, tone)[0] for key in KEYS}
    assert len(firsts) >= 3


def test_mc_proposes_a_woman_verified_at_tau_in_a_few_renders_and_her_face_fixes_it(subject):
    recognizer, embedding, views = subject
    lock = mapped_locker(recognizer, b"key one").lock(0, embedding, views)
    assert lock.locked and lock.distance >= 0.7 and lock.attempts <= 6
    bank = default_composer().bank
    assert bank.sex[lock.surrogate.identity.base] == "f"
    again = mapped_locker(recognizer, b"key one").lock(5, embedding, views)  # sixth to appear elsewhere
    assert again.surrogate.identity == lock.surrogate.identity
    others = {mapped_locker(recognizer, key).lock(0, embedding, views).surrogate.identity.base for key in KEYS[1:]}
    assert len(others | {lock.surrogate.identity.base}) >= 3


def test_one_donor_at_a_time_renders_fewer_and_chooses_what_two_at_a_time_chose(subject):
    """Each donor is rendered into each view on its own: judging a second beside the first costs its renders
    even when the first passes. The order decides either way, so the surrogate is the same."""
    recognizer, embedding, views = subject
    fewer = 0
    for key in KEYS[:3]:
        one = mapped_locker(recognizer, key).lock(0, embedding, views)
        two = mapped_locker(recognizer, key, mapped_round=2).lock(0, embedding, views)
        assert one.surrogate.identity == two.surrogate.identity and one.distance == two.distance
        assert one.attempts <= two.attempts
        fewer += one.attempts < two.attempts
    assert fewer >= 1


def test_mapped_lock_fails_closed_when_tau_cannot_be_reached(subject):
    recognizer, embedding, views = subject
    lock = mapped_locker(recognizer, b"hopeless", tau=1.5).lock(0, embedding, views)
    assert not lock.locked and lock.surrogate is None and lock.attempts == LockConfig().candidates


def test_warming_the_search_ahead_builds_its_donor_facts_and_changes_nothing_it_chooses(subject):
    """A live relay prepares the search while its source connects: the first person then waits only for their own
    renders. What the search chooses is the same either way."""
    recognizer, embedding, views = subject
    warmed = mapped_locker(recognizer, b"key one")
    warmed.warm()
    assert warmed._donor_reads is not None and len(warmed.composer._donor_hair) == len(warmed.composer.bank)
    lock, cold = warmed.lock(0, embedding, views), mapped_locker(recognizer, b"key one").lock(0, embedding, views)
    assert lock.surrogate.identity == cold.surrogate.identity and lock.distance == cold.distance
