"""IdentityBook (tracks → people, offline and online) and the --keep list, on synthetic
descriptors for the rules and on real shared clips for the thresholds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import shared_file
from media import read_rgb
from test_embedding import embedder, track_and_embed

from deidstream.config import IdentityConfig
from deidstream.errors import ConfigError, InputNotFoundError, InvalidInputError
from deidstream.tracking.embedding import POSE, FaceObservation
from deidstream.tracking.identity import IdentityBook
from deidstream.tracking.keep import KeepList
from deidstream.types import FaceDetections

RNG = np.random.default_rng(5)
PEOPLE = RNG.normal(size=(4, 128)).astype(np.float32) * 0.09  # people ~1.0 apart, like dlib's


def obs(track: int, frame: int, person: int | np.ndarray, quality: float = 1.0, noise: float = 0.01) -> FaceObservation:
    centre = PEOPLE[person] if isinstance(person, int) else person
    d = centre + RNG.normal(size=128).astype(np.float32) * noise
    return FaceObservation(frame, track, np.array([0, 0, 80, 80]), d, quality, 0.0)


def feed(book: IdentityBook, track: int, frames: range, person: int | np.ndarray) -> None:
    for f in frames:
        book.add(obs(track, f, person))


@pytest.mark.parametrize("kwargs,error", [
    ({}, None),
    ({"threshold": 0}, "threshold"),
    ({"threshold": 2.5}, "threshold"),
    ({"min_observations": 0}, "min_observations"),
    ({"min_observations": 4, "new_identity_after": 3}, "new_identity_after"),
    ({"new_identity_margin": 0.4}, "new_identity_margin"),
])
def test_config_ranges(kwargs, error):
    if error is None:
        IdentityConfig(**kwargs)
        return
    with pytest.raises(ConfigError, match=f"expected .*{error}.*got"):
        IdentityConfig(**kwargs)


def test_one_person_over_a_cut_is_one_identity_two_people_are_two():
    book = IdentityBook()
    feed(book, 1, range(0, 10), 0)
    feed(book, 2, range(12, 20), 0)  # same person after a cut
    feed(book, 3, range(0, 20), 1)  # someone else, all along
    ids = book.resolve()
    assert ids[1] == ids[2] != ids[3]
    assert book.identities() == [1, 2] and ids[1] == 1  # numbered by first appearance
    assert book.tracks_of(ids[1]) == [1, 2]


def test_tracks_present_in_the_same_frame_never_merge_however_close():
    twin = PEOPLE[0] + 0.001
    book = IdentityBook()
    feed(book, 1, range(0, 10), 0)
    feed(book, 2, range(9, 20), twin)  # one shared frame (9)
    ids = book.resolve()
    assert ids[1] != ids[2]
    assert book.identity_of(1) != book.identity_of(2)
    online = IdentityBook()
    feed(online, 1, range(0, 10), 0)
    feed(online, 2, range(9, 20), twin)
    assert online.identity_of(1) != online.identity_of(2)


def test_presence_without_an_embedding_counts_for_overlap_and_coasting_does_not():
    book = IdentityBook()
    feed(book, 1, range(0, 5), 0)
    feed(book, 2, range(20, 25), 0)
    book.track_seen(2, 3)  # track 2 was also on screen at frame 3 (not embedded then)
    book.see(FaceDetections(np.zeros((2, 4)), np.ones(2), track_id=np.array([1, 3]),
                            coasting=np.array([True, False])), 21)  # track 1 only coasts at 21
    ids = book.resolve()
    assert ids[1] != ids[2] and ids[3] not in (ids[1], ids[2])


def test_merge_order_closest_pair_first_then_the_overlap_blocks_the_chain():
    # A and C share frames; B is between them in time and in E_id. A-B is the closest pair, so
    # A and B merge first; C may not join {A, B} because it overlaps A, though it is near B.
    a, b, c = PEOPLE[0], PEOPLE[0] + 0.2 / np.sqrt(128), PEOPLE[0] + 0.5 / np.sqrt(128)
    book = IdentityBook(IdentityConfig(threshold=0.45))
    feed(book, 1, range(0, 10), a)
    feed(book, 2, range(20, 30), b)
    feed(book, 3, range(5, 15), c)
    ids = book.resolve()
    assert ids[1] == ids[2] != ids[3]
    book = IdentityBook(IdentityConfig(threshold=0.45))  # without the overlap all three are one
    feed(book, 1, range(0, 10), a)
    feed(book, 2, range(20, 30), b)
    feed(book, 3, range(40, 50), c)
    assert len(set(book.resolve().values())) == 1


def test_tracks_without_enough_usable_observations_get_their_own_identity():
    book = IdentityBook(IdentityConfig(min_observations=3))
    feed(book, 1, range(0, 10), 0)
    feed(book, 2, range(20, 22), 0)  # two usable observations only
    for f in range(30, 40):
        book.add(FaceObservation(f, 3, np.zeros(4), None, 0.0, 80.0, reason=POSE))
    ids = book.resolve()
    assert len({ids[1], ids[2], ids[3]}) == 3
    assert book.has_embedding(ids[2]) and not book.has_embedding(ids[3])
    with pytest.raises(ValueError, match="no usable descriptor"):
        book.embedding(ids[3])
    stats = book.stats()
    assert (stats.observations, stats.usable, stats.rejected, stats.tracks_embedded) == (22, 12, {POSE: 10}, 1)


def test_online_joins_after_min_observations_founds_after_more_and_never_reassigns():
    book = IdentityBook(IdentityConfig(min_observations=3, new_identity_after=5))
    # nobody known yet: the first person founds an identity as soon as a join would be decided
    assert [book.add(obs(1, f, 0)) for f in range(5)] == [None, None, 1, 1, 1]
    first = book.identity_of(1)
    feed(book, 2, range(10, 15), 1)  # someone ~1.0 away from everyone known: founds at once too
    assert book.identity_of(2) == 2
    assert [book.add(obs(3, f, 0)) for f in range(20, 23)] == [None, None, first]  # person 0 returns
    # someone between the join threshold and the margin waits for a steadier mean
    between = PEOPLE[0] + (PEOPLE[2] - PEOPLE[0]) * 0.6 / np.linalg.norm(PEOPLE[2] - PEOPLE[0])
    assert [book.add(obs(4, f, between)) for f in range(30, 35)] == [None, None, None, None, 3]
    feed(book, 1, range(30, 40), 1)  # track 1 drifts towards person 1: its identity stays
    assert book.identity_of(1) == first
    assert book.identity_of(99) is None


def test_embedding_is_the_quality_weighted_mean():
    book = IdentityBook(IdentityConfig(min_observations=2, new_identity_after=2))
    book.add(FaceObservation(0, 1, np.zeros(4), np.ones(128), 0.75, 0.0))
    book.add(FaceObservation(1, 1, np.zeros(4), np.zeros(128), 0.25, 0.0))
    assert np.allclose(book.embedding(book.identity_of(1)), 0.75)


def test_two_books_are_independent():
    a, b = IdentityBook(), IdentityBook()
    feed(a, 1, range(8), 0)
    feed(a, 2, range(10, 18), 1)
    feed(b, 5, range(8), 2)
    assert a.identities() == [1, 2] and b.identities() == [1] and b.identity_of(1) is None
    assert a.resolve() == {1: 1, 2: 2} and b.resolve() == {5: 1}


def test_saved_book_loads_and_new_tracks_join_its_identities(tmp_path):
    book = IdentityBook()
    feed(book, 1, range(0, 10), 0)
    feed(book, 2, range(0, 10), 1)
    book.resolve()
    path = tmp_path / "book.npz"
    book.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["book.npz"]  # no temporary left behind
    again = IdentityBook.load(path)
    assert again.identities() == [1, 2] and np.allclose(again.embedding(2), book.embedding(2))
    feed(again, 1, range(0, 10), 1)  # the next video: person 1 first, then a new person
    feed(again, 2, range(20, 30), 3)
    assert again.identity_of(1) == 2 and again.identity_of(2) == 3
    ids = again.resolve()
    assert ids == {1: 2, 2: 3} and again.identities() == [1, 2, 3]
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a book")
    with pytest.raises(InvalidInputError, match="not an identity book"):
        IdentityBook.load(bad)


# -- real clips ------------------------------------------------------------------------------


def book_of(clip: str, every_n_frames: int = 6) -> tuple[IdentityBook, list]:
    book = IdentityBook()
    runs = track_and_embed(clip, every_n_frames)
    for run in runs:
        book.see(run.faces, run.index)
        for o in run.observations:
            book.add(o)
    return book, runs


def usable_frames(runs: list, track: int) -> list[int]:
    return [o.frame_index for r in runs for o in r.observations if o.track_id == track and o.usable]


def test_stage_clip_performer_is_one_identity_across_cuts_and_others_are_not():
    book, runs = book_of("stage_multi_person_cuts.mp4")
    ids = book.resolve()
    embedded = [t for t in ids if len(usable_frames(runs, t)) >= book.config.min_observations]
    wide = [t for t in embedded if min(usable_frames(runs, t)) < 20]  # the wide shot: the performer only
    close = [t for t in embedded if any(85 <= f <= 205 for f in usable_frames(runs, t))]  # his close-up
    assert len(wide) == 1 and close
    performer = ids[wide[0]]
    assert {ids[t] for t in close} == {performer}
    # The pianist's close-up (frames 25-50): the largest face there, in profile.
    sizes = {}
    for r in runs[25:50]:
        for tid, box in zip(r.faces.track_id, r.faces.xyxy):
            sizes[int(tid)] = max(sizes.get(int(tid), 0), float(box[2] - box[0]))
    pianist = max(sizes, key=sizes.get)
    assert ids[pianist] != performer
    # The audience at the end (frames 212-274) is not the performer.
    audience = [t for t in embedded if min(usable_frames(runs, t)) >= 212]
    assert all(ids[t] != performer for t in audience)
    with_embedding = [i for i in book.identities() if book.has_embedding(i)]
    assert len(with_embedding) <= 4


def test_overlapping_tracks_are_never_one_identity_on_real_clips():
    for clip in ("stage_multi_person_cuts.mp4", "two_faces_selfie_portrait.mp4"):
        book, runs = book_of(clip)
        ids = book.resolve()
        for r in runs:
            present = [int(t) for t, c in zip(r.faces.track_id, r.faces.coasting) if not c]
            assert len({ids[t] for t in present}) == len(present), (clip, r.index)


def test_two_faces_are_two_identities():
    book, _ = book_of("two_faces_selfie_portrait.mp4")
    book.resolve()
    assert len([i for i in book.identities() if book.has_embedding(i)]) == 2


def test_single_person_clip_is_one_identity_offline_and_online():
    book, runs = book_of("talking_head_1.mp4")
    online = {t: book.identity_of(t) for t in book._tracks}
    embedded = {t for t in online if len(usable_frames(runs, t)) >= book.config.min_observations}
    assert embedded and len({online[t] for t in embedded}) == 1
    ids = book.resolve()
    assert len({ids[t] for t in embedded}) == 1


def test_online_assigns_within_a_few_frames_and_never_reassigns():
    book = IdentityBook()
    given: dict[int, tuple[int, int]] = {}  # track → (identity, frame it was given)
    starts: dict[int, int] = {}
    for run in track_and_embed("stage_multi_person_cuts.mp4", 6):
        book.see(run.faces, run.index)
        for o in run.observations:
            if o.usable:
                starts.setdefault(o.track_id, run.index)
            book.add(o)
        for t in run.faces.track_id:
            now = book.identity_of(int(t))
            if int(t) in given:
                assert now == given[int(t)][0], f"track {t} changed identity at frame {run.index}"
            elif now is not None:
                given[int(t)] = (now, run.index)
    assert given
    # A track's first 3 usable observations come on consecutive frames, then one every 6 frames
    # (in this test): it joins a known person after 3, founds a new identity after new_identity_after.
    delays = [frame - starts[t] for t, (_, frame) in given.items()]
    assert max(delays) <= 2 + (book.config.new_identity_after - 3) * 6 + 6, delays


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keep")
    same = read_rgb(shared_file("videos/talking_head_1.mp4"), limit=100)[-1]  # a later frame than the first ones
    other = read_rgb(shared_file("videos/talking_head_2.mp4"), limit=1)[0]
    for name, img in (("same.jpg", same), ("other.jpg", other), ("none.jpg", np.full((200, 200, 3), 127, np.uint8))):
        cv2.imwrite(str(folder / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return folder


def test_keep_matches_the_same_person_only(photos):
    book, _ = book_of("talking_head_1.mp4")
    ids = book.resolve()
    person = book.embedding(ids[min(t for t in ids if book.has_embedding(ids[t]))])
    rec = embedder().recognizer
    same = KeepList.from_photos([photos / "same.jpg"], rec)
    other = KeepList.from_photos([photos / "other.jpg"], rec)
    assert same.matches(person) and same.distance(person) < 0.4
    assert not other.matches(person) and other.distance(person) > 0.6
    both = KeepList.from_photos([photos / "other.jpg", photos / "same.jpg"], rec)
    assert both.matches(person) and len(both) == 2 and "same.jpg" in repr(both)
    assert not KeepList(np.zeros((0, 128)), ()).matches(person)


def test_keep_photo_errors_name_the_file(photos):
    rec = embedder().recognizer
    with pytest.raises(InvalidInputError, match="none.jpg: no face"):
        KeepList.from_photos([photos / "same.jpg", photos / "none.jpg"], rec)
    with pytest.raises(InvalidInputError, match="broken.jpg: .*cannot be read"):
        KeepList.from_photos([photos / "broken.jpg"], rec)
    with pytest.raises(InputNotFoundError, match="missing.jpg"):
        KeepList.from_photos([photos / "missing.jpg"], rec)
    with pytest.raises(ConfigError, match="expected a keep threshold"):
        KeepList(np.zeros((0, 128)), (), threshold=0.7)
