"""Configuration of the identity side: E_id's looks, the identity book, the surrogate lock, shot
cuts and landmark smoothing."""

from __future__ import annotations

from dataclasses import dataclass

from deidstream.config.pipeline import DEFAULT_TAU, LOCK_CANDIDATES, LOCK_EXPLORE, GeneratorConfig
from deidstream.errors import ConfigError, require


@dataclass(frozen=True, slots=True, kw_only=True)
class LockConfig:
    """``tau``: minimum E_id distance of an accepted surrogate to its subject; ``min_distance``: to donors and to other
    surrogates; ``candidates``: how many to try per person; ``per_round``: how many are drawn around the donors first
    (and again while none passes the donor and other-people bounds); ``climb_round``: how many step off the farthest so
    far in each later round, by ``climb_step`` of a first-round step; ``explore``: how many are compared before one
    that passes is kept; after ``give_up_after`` a search whose best is still ``give_up_margin`` short of
    ``tau`` stops; ``pause_s``: seconds the search sleeps after each candidate it renders into a view (live, where it
    runs beside the frames); ``appearance_step``/``shape_spread``: how far a candidate moves from its donor mix (in
    standard deviations); ``skin_tolerance``: ITA° of skin tone, and ``age_step`` years of apparent age, that put a
    donor a step farther from a subject (the donors nearest are tried); ``key_choice``/``key_tie``: how many passing
    candidates, within how much score of the best, the key chooses among; ``band_weight``: score a natural candidate
    loses per age band between its donor's label and the subject's apparent age; ``skin_mismatch``: ITA° past
    ``skin_tolerance`` between its donor's skin and the subject's that cost one point of score;
    ``hair_tolerance``/``hair_mismatch``: L* by which a donor's upper lip and chin may be darker or lighter against its
    skin than the subject's (a moustache, a beard) before it costs, and the L* past that which cost one point;
    ``tone_tolerance``/``tone_mismatch``: the ITA° difference of the cheeks and nose as rendered in the person's views,
    against theirs, that reads as the same skin tone, and the ITA° past it that cost one point (as much as changing the
    apparent sex); ``mapped_round``/``mapped_margin``/``mapped_fail``/``key_weight``: M_c's lock (below)."""

    tau: float = DEFAULT_TAU
    # from everyone else of the video and their surrogates: dlib's same-person threshold (two natural
    # faces of different real people are 0.82 apart on average, 10% of pairs under 0.63: asking more
    # would turn away most surrogates in a crowd)
    min_distance: float = 0.6
    # dlib puts 44% of 4,072 unrelated real people within 0.6 of one of the 348 donors (median 0.61;
    # and 90% of donors within 0.6 of another donor: SFHQ varies one synthetic person by age, hair,
    # expression; benchmarks/bench_generator.py), so 0.6 against every donor turns away most faces
    # there are; 0.5 keeps out near-twins.
    donor_distance: float = 0.5
    candidates: int = LOCK_CANDIDATES
    per_round: int = 6
    climb_round: int = 3
    climb_step: float = 0.7
    search_views: int = 2
    explore: int = LOCK_EXPLORE
    # a search whose best is still 0.05 short after 18 is spending seconds on a lucky draw, and a lucky
    # draw is what lets a poorly verified surrogate through (a small face's descriptor varies by
    # 0.4-0.6 between its frames)
    give_up_after: int = 18
    give_up_margin: float = 0.05
    pause_s: float = 0.0
    appearance_step: float = 0.8
    # a climb that may go anywhere reaches dlib distances through garish textures (orange and blue
    # skin, painted stripes) no donor has; a surrogate stays within this distance (in standard
    # deviations) of its matched donors' centre, about where the median donor lies from the mean face
    appearance_radius: float = 7.0
    shape_spread: float = 1.5
    mix: int = 8
    skin_tolerance: float = 12.0
    # which donors are near a person (natural_lock.NaturalLocker._order_for): 10 years of apparent age
    # between a donor's band and theirs weigh as much as ``skin_tolerance`` degrees of skin tone
    age_step: float = 10.0
    band_weight: float = 0.08
    # among the passing candidates, up to this many within this score of the best are the key's to choose (its
    # order for the person's face): with a tie of 0.1 the one that fits best won under any key that had it judged
    # (single_face_short's man got donor 110, 0.115 ahead, under three keys of three: outputs linkable across keys)
    key_choice: int = 4
    key_tie: float = 0.15
    # M_c's lock (engine.fit.mapped_score): donors judged at a time (each is rendered into each view on its own, so
    # a second donor judged beside the first costs its renders even when the first passes; the surrogate is the
    # same: a warm lock of one person takes 0.15-0.34 s with two, 0.11-0.21 s with one); how far over τ a
    # prediction should be, and what each unit short costs; the key's weight in the order
    mapped_round: int = 1
    mapped_margin: float = 0.05
    mapped_fail: float = 4.0
    key_weight: float = 0.3
    skin_mismatch: float = 100.0
    # shaved skin reads 4-14 L* darker at the upper lip than at the cheeks (the nose's shadow, donors and
    # subjects alike), a full moustache 20-45: crowd_1080p's boys were given moustached men's faces, and at 20
    # L* per point its clean-shaven older man a moustache that read as a painted black square at 60 px (at 12,
    # a shaved donor; at 10 and below, a small move of a face changed its first donor)
    hair_tolerance: float = 8.0
    hair_mismatch: float = 12.0
    # the donor's label says little of how its render looks once toned and lit by the view: talking_head_1's
    # man got a donor whose reddish stubble put his cheeks and nose 20 ITA° off his own in every frame
    tone_tolerance: float = 5.0
    tone_mismatch: float = 25.0
    # a file's person detected in fewer frames than this gets the fallback, not a surrogate: a detection that
    # comes and goes within a few frames is as often something else (portrait_s18: a blurred object behind
    # the woman, detected in 2 of 6 frames, got a surrogate face painted on it), and a face painted on a
    # wall shows worse than a blur
    min_seen_frames: int = 5

    def __post_init__(self) -> None:
        require(0.0 < self.tau < 2.0, f"tau must be in (0, 2), got {self.tau}")
        require(0.0 < self.min_distance < 2.0 and 0.0 < self.donor_distance < 2.0,
                f"min_distance and donor_distance must be in (0, 2), got {self.min_distance}, {self.donor_distance}")
        require(min(self.candidates, self.per_round, self.climb_round, self.explore, self.mix, self.give_up_after) >= 1,
                f"candidates, per_round, climb_round, explore, mix and give_up_after must be >= 1, got "
                f"{self.candidates}, {self.per_round}, {self.climb_round}, {self.explore}, {self.mix}, "
                f"{self.give_up_after}")
        require(self.climb_step > 0, f"climb_step must be > 0, got {self.climb_step}")
        require(self.give_up_margin >= 0 and self.pause_s >= 0,
                f"give_up_margin and pause_s must be >= 0, got {self.give_up_margin}, {self.pause_s}")
        require(self.appearance_step >= 0 and self.shape_spread >= 0 and self.skin_tolerance > 0,
                "appearance_step and shape_spread must be >= 0 and skin_tolerance > 0")
        require(self.appearance_radius > 0, f"appearance_radius must be > 0, got {self.appearance_radius}")
        require(self.age_step > 0, f"age_step must be > 0, got {self.age_step}")
        require(self.key_choice >= 1 and self.key_tie >= 0, "key_choice must be >= 1 and key_tie >= 0")
        require(self.band_weight >= 0 and min(self.skin_mismatch, self.hair_mismatch, self.tone_mismatch) > 0,
                f"band_weight must be >= 0, skin_mismatch, hair_mismatch and tone_mismatch > 0, got "
                f"{self.band_weight}, {self.skin_mismatch}, {self.hair_mismatch}, {self.tone_mismatch}")
        require(self.hair_tolerance >= 0 and self.tone_tolerance >= 0,
                f"hair_tolerance and tone_tolerance must be >= 0, got {self.hair_tolerance}, {self.tone_tolerance}")
        require(self.min_seen_frames >= 1, f"min_seen_frames must be >= 1, got {self.min_seen_frames}")


@dataclass(frozen=True, slots=True, kw_only=True)
class IdentityConfig:
    """``threshold``: E_id distance under which two tracks' mean embeddings are one person.
    Track means are less noisy than single descriptors, so it sits below dlib's 0.6 per-image
    threshold: on the shared clips the performer's two tracks across a cut are 0.33 apart (his
    single close-up descriptors 0.39-0.59 from the other track's mean), different people's track
    means 0.69-0.71 (crowd_1080p, two_faces_selfie_portrait; benchmarks/bench_identity.py).
    ``min_observations``: usable observations a track needs before it is merged with others
    (offline) or joins an identity (online); tracks with fewer keep an identity of their own.
    ``new_identity_after``: usable observations an online track without a match waits before it
    founds a new identity: the first frames after a cut are the least like the person's mean
    (after a cut on stage_multi_person_cuts the mean of the first 3 is 0.56-0.58 from the person, of
    the first 8 0.45-0.47, of the whole track 0.32), and an online identity can never be merged
    later. ``new_identity_margin``: unless no identity it could belong to lies within this distance
    (far beyond those 0.56-0.58; always so for the first people of a stream): then it founds one
    after ``min_observations``, so that live, a newcomer's surrogate is not held back for nothing."""

    threshold: float = 0.52
    min_observations: int = 3
    new_identity_after: int = 8
    new_identity_margin: float = 0.75

    def __post_init__(self) -> None:
        require(0.0 < self.threshold < 2.0, f"expected an identity threshold in (0, 2), got {self.threshold}")
        require(self.min_observations >= 1, f"expected min_observations >= 1, got {self.min_observations}")
        require(self.new_identity_after >= self.min_observations,
                f"expected new_identity_after >= min_observations ({self.min_observations}), "
                f"got {self.new_identity_after}")
        require(self.threshold <= self.new_identity_margin < 2.0,
                f"expected new_identity_margin in [threshold ({self.threshold}), 2), got {self.new_identity_margin}")


@dataclass(frozen=True, slots=True)
class OneEuroConfig:
    """``min_cutoff`` Hz at rest; ``beta`` Hz more per face size per second of speed; ``d_cutoff`` Hz for
    the speed estimate; a point's own motion counts where it exceeds ``residual_gate`` times the median."""

    min_cutoff: float = 0.5
    beta: float = 60.0
    d_cutoff: float = 4.0
    residual_gate: float = 3.0

    def __post_init__(self) -> None:
        checks = {
            "min_cutoff": (self.min_cutoff, 1e-3, 100.0),
            "beta": (self.beta, 0.0, 1e4),
            "d_cutoff": (self.d_cutoff, 1e-3, 100.0),
            "residual_gate": (self.residual_gate, 1.0, 100.0),
        }
        for name, (value, lo, hi) in checks.items():
            if not (isinstance(value, (int, float)) and lo <= value <= hi):
                raise ConfigError(f"expected {name} in [{lo}, {hi}], got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CutConfig:
    """A cut is a frame whose hue-saturation histogram correlates with the previous frame's
    below ``threshold`` (1 = identical), or below ``soft_threshold`` while the mean grey-level
    change is above ``min_change`` (a cut between shots of similar colours). On the shared
    clips: the three cuts of the stage clip score 0.44, 0.50 and 0.68 (grey change 28-31);
    motion within a shot stays above 0.93 or below a change of 14."""

    threshold: float = 0.5
    soft_threshold: float = 0.9
    min_change: float = 20.0
    size: int = 64

    def __post_init__(self) -> None:
        if not -1.0 < self.threshold < 1.0:
            raise ConfigError(f"cut threshold must be in (-1, 1), got {self.threshold}")
        if self.size < 16:
            raise ConfigError(f"cut size must be >= 16, got {self.size}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbedderConfig:
    """Which faces E_id trusts and how often it looks at each track.

    ``min_face_px``: side of the dlib-like face box below which descriptors are noise;
    ``full_quality_px``: side from which size no longer adds quality. ``max_yaw_deg`` /
    ``max_pitch_deg``: pose gates (dlib's network is trained on near-frontal faces). Looks turned between
    ``max_yaw_deg`` and ``turned_yaw_deg`` (files only, :func:`file_embedder_config`) are kept too, at
    ``turned_weight`` times the quality: so a person seen only in three-quarter view (the audience of
    stage_multi_person_cuts) has an identity and a surrogate, and a person also seen frontally is described
    and verified almost only by the frontal looks.
    ``min_sharpness``: variance of the Laplacian on the aligned 150 px grey chip: defocused
    background faces measure 2-10 (and give descriptors 0.6-0.8 from anyone), a soft but clean
    talking head 16-21 (descriptors within 0.17 of their mean), sharp faces 40-240.
    ``max_alignment_error``: mean distance of dlib's 5 points from MediaPipe's, in face sides, on a face
    turned up to 30°; past that, on every look (live ones too), it grows by itself every 15° (the two part as
    the face turns: 0.07-0.13 face sides at 40-55° on stage_multi_person_cuts, both on the eyes and nose).
    ``every_n_frames``: a track is embedded at most every N frames, to bound the cost (the
    5 points and the network take about 9 ms per face, benchmarks/bench_eid.py); its first ``first_frames`` usable
    observations are taken on consecutive frames so an identity can be given quickly, unless
    ``first_frames`` looks in a row found no landmarks (the back of a head, a face too small or
    turned for FaceMesh: each such look is a FaceMesh call for nothing), then every N until one
    does. Faces FaceMesh finds but E_id turns down (turned, defocused, misaligned) are still looked
    at on every frame: their usable frames are few and come and go, and the best of them become
    the views a surrogate is verified in (backing off for those too locked 1 person of 16 on
    crowd_1080p instead of 5, ``benchmarks/bench_privacy.py --methods surrogate``). After
    ``settled_after`` usable observations the track's embedding no longer moves (the mean of 12
    good looks), so it is looked at every ``settled_every`` frames only: enough to find a better
    view later, at a fraction of the cost.
    """

    min_face_px: float = 40.0
    full_quality_px: float = 96.0
    max_yaw_deg: float = 35.0
    turned_yaw_deg: float = 0.0  # 0: no turned looks
    turned_weight: float = 0.1
    max_pitch_deg: float = 30.0
    min_sharpness: float = 10.0
    max_alignment_error: float = 0.06
    every_n_frames: int = 3
    first_frames: int = 3
    settled_after: int = 12
    settled_every: int = 15

    def __post_init__(self) -> None:
        require(8.0 <= self.min_face_px <= 1000.0, f"expected min_face_px in [8, 1000], got {self.min_face_px}")
        require(self.full_quality_px >= self.min_face_px,
               f"expected full_quality_px >= min_face_px ({self.min_face_px}), got {self.full_quality_px}")
        require(0.0 < self.max_yaw_deg <= 90.0, f"expected max_yaw_deg in (0, 90], got {self.max_yaw_deg}")
        require(self.turned_yaw_deg == 0.0 or self.max_yaw_deg <= self.turned_yaw_deg <= 90.0,
               f"expected turned_yaw_deg 0 or in [max_yaw_deg ({self.max_yaw_deg}), 90], got {self.turned_yaw_deg}")
        require(0.0 < self.turned_weight <= 1.0, f"expected turned_weight in (0, 1], got {self.turned_weight}")
        require(0.0 < self.max_pitch_deg <= 90.0, f"expected max_pitch_deg in (0, 90], got {self.max_pitch_deg}")
        require(self.min_sharpness >= 0.0, f"expected min_sharpness >= 0, got {self.min_sharpness}")
        require(0.0 < self.max_alignment_error <= 1.0,
               f"expected max_alignment_error in (0, 1], got {self.max_alignment_error}")
        require(self.every_n_frames >= 1, f"expected every_n_frames >= 1, got {self.every_n_frames}")
        require(self.first_frames >= 0, f"expected first_frames >= 0, got {self.first_frames}")
        require(self.settled_after >= self.first_frames,
               f"expected settled_after >= first_frames ({self.first_frames}), got {self.settled_after}")
        require(self.settled_every >= self.every_n_frames,
               f"expected settled_every >= every_n_frames ({self.every_n_frames}), got {self.settled_every}")


TURNED_YAW_DEG = 55.0  # the three-quarter views of stage_multi_person_cuts' audience turn 40-56°

# Apparent age bands (child, teen, young adult, middle-aged, older) and the age in years each stands for: the
# donors' hand labels, the attribute model's targets and the lock's matching all use these.
AGE_BAND_YEARS = {"c": 8.0, "t": 16.0, "y": 27.0, "m": 45.0, "o": 68.0}


def age_band(years: float) -> int:
    """Index into ``AGE_BAND_YEARS`` of the band whose age is nearest ``years``.

    >>> age_band(25.0), age_band(60.0)
    (2, 4)
    """
    centres = list(AGE_BAND_YEARS.values())
    return min(range(len(centres)), key=lambda i: abs(centres[i] - years))


# A search runs beside the frames, so it is shorter than a file's: the first draws and two climbing
# rounds, each candidate judged in the best view and verified in the next. The files' search (24 candidates
# in two views) delayed the first surrogate from 1.8 to 5.9 s with one face and to 15.2 s with two; 12 in
# two views cost the two-face relay's p99 and share rendered (benchmarks/bench_live.py, scratch runs).
LIVE_CANDIDATES = 12
# A search with none of those 12 verified goes on drawing, up to 24, unless its best is 0.05 short of τ
# (hopeless). Replays of the two-face benchmark's six first searches, under 24 keys each, locked 137
# of 144 with 12 and 143 of 144 with this; a failed search leaves its person blurred until a retry about
# 10 s later. The extra draws cost only the searches that would have failed.
LIVE_MAX_CANDIDATES = 24
LIVE_LOCK_PAUSE_S = 0.03  # a live search yields between candidates while faces are rendered (Python: one GIL)


def file_embedder_config() -> EmbedderConfig:
    """E_id's gates on a file, where every look is known before anyone's surrogate is chosen (so a person's
    frontal looks, when they have any, come first). A live lock is made on the first good looks, and a
    surrogate verified only on a turned face could come closer than τ once the face turns to the camera:
    live keeps turned looks out."""
    return EmbedderConfig(turned_yaw_deg=TURNED_YAW_DEG)


def file_lock_config(config: GeneratorConfig) -> LockConfig:
    """The lock's search on a file, between its two passes."""
    return LockConfig(tau=config.tau, candidates=config.candidates, explore=config.explore)


def live_lock_config(config: GeneratorConfig) -> LockConfig:
    """The lock's search for a live source: shorter than a file's, judged in one view, yielding the CPU
    between candidates (see ``LIVE_CANDIDATES``)."""
    return LockConfig(tau=config.tau, candidates=min(config.candidates, LIVE_MAX_CANDIDATES), explore=LIVE_CANDIDATES,
                      give_up_after=LIVE_CANDIDATES, search_views=1, pause_s=LIVE_LOCK_PAUSE_S)
