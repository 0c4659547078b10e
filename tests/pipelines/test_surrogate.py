"""The surrogate mode end to end on a real clip: every face replaced, one surrogate per person,
reproducible with a key, different with another key, frames and timing kept."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file
from media import facts, read_rgb

from deidstream.api import anonymize
from deidstream.config import GeneratorConfig, PipelineConfig

CLIP = "single_face_short.mp4"
TAU = 0.7  # the default (standard privacy): the test checks the mechanism on a short clip, the benchmark the numbers


def _run(src, out, key: bytes, save_book=None):
    config = PipelineConfig(generator=GeneratorConfig(tau=TAU, key=key))
    return anonymize(src, out, config=config, save_book=save_book)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    src = shared_file(f"videos/{CLIP}")
    tmp = tmp_path_factory.mktemp("surrogate")
    a = _run(src, tmp / "a.mp4", b"key one", save_book=tmp / "book.npz")
    a2 = _run(src, tmp / "a2.mp4", b"key one")
    b = _run(src, tmp / "b.mp4", b"key two")
    _run(src, tmp / "c.mp4", b"key three")
    return src, tmp, a, a2, b


@pytest.fixture(scope="module")
def recognizer():
    from deidstream.evaluation.judge import DlibRecognizer

    return DlibRecognizer("hog", upsample=1)


def test_frames_timing_and_audio_are_kept(runs):
    src, tmp, report, _, _ = runs
    assert facts(tmp / "a.mp4") == facts(src)
    assert report.frames_written == report.frames


def test_embeddings_are_written_only_when_asked(runs):
    from deidstream.tracking.identity import IdentityBook

    _, tmp, _, _, _ = runs
    assert sorted(p.name for p in tmp.iterdir() if p.suffix == ".npz") == ["book.npz"]  # runs a2, b, c wrote none
    book = IdentityBook.load(tmp / "book.npz")
    assert len([i for i in book.identities() if book.has_embedding(i)]) == 1


def test_the_person_is_locked_and_rendered_not_blurred(runs):
    _, _, report, _, _ = runs
    assert len(report.people) == 1
    person = report.people[0]
    assert person["locked"] and person["id_distance_verified"] >= TAU
    assert report.face_outcomes["rendered"] >= 0.9 * report.faces
    assert "id_distance_verified" in person and "embedding" not in str(report.to_dict())


def test_mc_renders_a_few_candidates_where_the_search_judges_dozens(runs):
    """The default chooser (M_c) renders only its first few donors; ``chooser="search"`` still judges ``explore``
    of them and keeps the best fit, and locks the person too."""
    src, tmp, report, _, _ = runs
    assert report.people[0]["candidates_tried"] <= 6
    config = PipelineConfig(generator=GeneratorConfig(tau=TAU, key=b"key one", chooser="search"))
    searched = anonymize(src, tmp / "search.mp4", config=config)
    assert searched.people[0]["locked"] and searched.people[0]["candidates_tried"] >= GeneratorConfig().explore


def test_every_face_is_far_from_its_original_and_keeps_one_surrogate(runs, recognizer):
    src, tmp, _, _, _ = runs
    original, output = read_rgb(src), read_rgb(tmp / "a.mp4")
    distances, surrogate = [], []
    for i in range(0, len(original), 6):
        faces = recognizer.detect(original[i])
        assert faces, f"frame {i}: the test clip should show a face"
        d_in = recognizer.describe(original[i], faces[:1])[0]
        d_out = recognizer.describe(output[i], recognizer.at_boxes(output[i], faces[0].box[None]))[0]
        distances.append(float(np.linalg.norm(d_in - d_out)))
        surrogate.append(d_out)
    assert min(distances) >= 0.6, f"an output face is within 0.6 of its input: {min(distances):.2f}"
    s = np.array(surrogate)
    spread = np.linalg.norm(s[:, None] - s[None], axis=2).max()
    # one person to dlib (under its 0.6) in every pair of frames: a donor with deep smile creases measured 0.49
    # between his neutral and smiling frames, another 0.45 or less; two different surrogates are ~0.8 apart
    assert spread <= 0.55, f"the surrogate changes inside one track: max distance {spread:.2f}"


def test_same_key_same_surrogate_other_key_another(runs, recognizer):
    _, tmp, _, _, _ = runs
    a, a2, b, c = (read_rgb(tmp / n) for n in ("a.mp4", "a2.mp4", "b.mp4", "c.mp4"))
    assert len(a) == len(a2) == len(b) == len(c)
    mid = len(a) // 2
    assert np.abs(a[mid].astype(int) - a2[mid].astype(int)).max() <= 2  # same key: the same render
    faces = recognizer.detect(a[mid])
    da = recognizer.describe(a[mid], faces[:1])[0]
    # few donors match him closely, so two keys may meet on one donor (with either E_id, one pair of
    # three keys did here): of two other keys, one at least gives another surrogate
    others = [recognizer.describe(o[mid], recognizer.at_boxes(o[mid], faces[0].box[None]))[0] for o in (b, c)]
    assert max(np.linalg.norm(da - d) for d in others) >= 0.3, "another key should give another surrogate"


def test_keep_leaves_exactly_the_reference_person_unaltered(tmp_path, recognizer):
    import cv2

    src = shared_file("videos/two_faces_selfie_portrait.mp4")
    frames = read_rgb(src, limit=40)
    faces = sorted(recognizer.detect(frames[30]), key=lambda f: f.box[0])
    assert len(faces) >= 2, "the clip shows two people side by side"
    x0, y0, x1, y1 = faces[0].box.astype(int)
    pad = (x1 - x0) // 2
    photo = frames[30][max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad]
    photo_path = tmp_path / "keep.jpg"
    cv2.imwrite(str(photo_path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    from deidstream.tracking.keep import KeepList

    keep = KeepList.from_photos([photo_path])  # the product's E_id, as the pipeline matches with it
    out = tmp_path / "out.mp4"
    report = anonymize(src, out, config=PipelineConfig(generator=GeneratorConfig(tau=TAU, key=b"k")),
                       keep=keep.matches)
    assert sum(p["keep"] for p in report.people) == 1
    result = read_rgb(out, limit=40)
    h, w = frames[0].shape[:2]
    kept_box = np.clip(faces[0].box, 0, [w, h, w, h]).astype(int)
    for i in (10, 30):
        a, b = frames[i], result[i]
        kx0, ky0, kx1, ky1 = kept_box
        kept_diff = np.abs(a[ky0:ky1, kx0:kx1].astype(int) - b[ky0:ky1, kx0:kx1]).mean()
        assert kept_diff < 4.0, f"frame {i}: the kept person changed ({kept_diff:.1f})"
        other = faces[1].box[None]
        d_in = recognizer.describe(a, recognizer.at_boxes(a, other))[0]
        d_out = recognizer.describe(b, recognizer.at_boxes(b, other))[0]
        assert np.linalg.norm(d_in - d_out) >= 0.6, f"frame {i}: the other person is recognisable"


def test_two_people_get_two_surrogates_that_do_not_look_alike(tmp_path, recognizer):
    src = shared_file("videos/two_faces_selfie_portrait.mp4")
    out = tmp_path / "out.mp4"
    report = anonymize(src, out, config=PipelineConfig(generator=GeneratorConfig(tau=TAU, key=b"k")))
    assert len(report.people) == 2 and all(p["locked"] for p in report.people)
    frames, result = read_rgb(src), read_rgb(out)
    for i in (15, 45, 75):
        faces = sorted(recognizer.detect(frames[i]), key=lambda f: f.box[0])
        assert len(faces) >= 2, f"frame {i}: the clip shows two people side by side"
        d = recognizer.describe(result[i], recognizer.at_boxes(result[i], np.stack([f.box for f in faces[:2]])))
        apart = float(np.linalg.norm(d[0] - d[1]))
        assert apart >= 0.6, f"frame {i}: the two surrogates are {apart:.2f} apart"


def test_the_performer_keeps_one_surrogate_across_the_cuts(tmp_path, recognizer):
    """stage_multi_person_cuts: the performer's tracks end at each hard cut; the identity book
    makes them one person, so the faces before and after a cut wear the same surrogate."""
    src = shared_file("videos/stage_multi_person_cuts.mp4")
    out = tmp_path / "out.mp4"
    # τ below the default: at 85 px the performer's best candidate reaches ~0.77 (the benchmark
    # measures the default); this test is about one surrogate across cuts
    report = anonymize(src, out, config=PipelineConfig(generator=GeneratorConfig(tau=0.65, key=b"k")))
    performer = max(report.people, key=lambda p: len(p["tracks"]))
    assert len(performer["tracks"]) >= 2 and performer["locked"]
    frames, result = read_rgb(src), read_rgb(out)
    outputs = []
    for tid in performer["tracks"]:
        span = report.tracks[tid]
        for i in np.linspace(span.first_frame, span.last_frame, 4)[1:3].round().astype(int):
            faces = recognizer.detect(frames[i])
            assert faces, f"frame {i}: the performer's face is visible"
            face = max(faces, key=lambda f: f.box[2] - f.box[0])  # the performer is the largest face
            d_in = recognizer.describe(frames[i], [face])[0]
            d_out = recognizer.describe(result[i], recognizer.at_boxes(result[i], face.box[None]))[0]
            assert np.linalg.norm(d_in - d_out) >= 0.6, f"frame {i}: the performer is recognisable"
            outputs.append((tid, d_out, d_in))
    across = [float(np.linalg.norm(a - b)) for ta, a, _ in outputs for tb, b, _ in outputs if ta < tb]
    real = [float(np.linalg.norm(a - b)) for ta, _, a in outputs for tb, _, b in outputs if ta < tb]
    # at 85 px the performer's own descriptors differ by ~0.5 across the cut; a different surrogate
    # after it would be >= 0.7 away (the lock keeps people's surrogates that far apart)
    assert across and max(across) < 0.6, f"the surrogate changed across a cut: {max(across):.2f}"
    assert np.mean(across) <= np.mean(real) + 0.05, (
        f"the surrogate varies across the cut more than the performer does ({np.mean(across):.2f} vs "
        f"{np.mean(real):.2f})")


def test_a_hopeless_search_gives_up_and_the_person_stays_blurred(tmp_path):
    """No candidate can be 1.5 from its subject: the search stops after its 24 and says how close it came."""
    src = shared_file(f"videos/{CLIP}")
    config = PipelineConfig(generator=GeneratorConfig(tau=1.5, key=b"hopeless", candidates=24))
    report = anonymize(src, tmp_path / "out.mp4", config=config)
    (person,) = report.people
    assert not person["locked"] and 0 < person["candidates_tried"] <= 24
    assert 0.0 < person["best_id_distance"] < 1.45
    assert report.face_outcomes["rendered"] == 0 and report.face_outcomes["fallback"] == report.faces
