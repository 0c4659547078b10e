"""Training M_c on the generator's faces: predict where each donor's surrogate lands from a subject in E_id.

Every donor's surrogate for every training face is in the table (rendered and judged once), so M_c learns the
render's E_id distance from the subject by regression (mean squared error over the judged pairs; Adam). The
paper's L_de-id = |τ − d| is then the ranking objective the lock applies to M_c's predictions
(:func:`deidstream.engine.fit.mapped_score`), together with the lock's attribute fit.

Held-out faces measure the whole choice: the prediction's error, how often M_c's first donor passes τ, how
many renders the lock needs until one passes, the attribute fit and distance of the donor kept, how often two
keys keep the same donor and how often a face moved as far as two looks at one person keeps its donor; beside
the keyed search's rule applied in hindsight to every donor's true render and a random donor of the pool.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import asdict, dataclass

import numpy as np

from deidstream.config import LockConfig, age_band
from deidstream.engine.fit import Subject, attribute_fit, mapped_score
from deidstream.errors import DeidstreamError
from deidstream.modelbuild.mapper_table import MapperTable
from deidstream.networks.mapper import SCALE, IdentityMapper, subject_features
from deidstream.networks.mapper_net import MapperNet

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainSettings:
    steps: int = 3000
    batch: int = 64
    lr: float = 1e-3  # the paper's 6e-5 trains a StyleGAN-sized mapper; this one has 0.1M parameters
    hidden: int = 256
    code: int = 32
    noise: float = 0.3  # E_id distance between two looks at one person (the stability measure)
    holdout: float = 0.15
    seed: int = 0


def donor_table(bank, donor_hair: np.ndarray, attributes) -> dict[str, np.ndarray]:
    """What the lock knows of each donor before rendering: labelled band, skin ITA°, facial hair, and its own
    apparent sex and age (its render's follow them: correlation 0.94 and 0.75 over the training table)."""
    female, age = attributes(bank.descriptors.astype(np.float32))
    return {"band": bank.age.astype(np.float64), "ita": bank.ita.astype(np.float64), "hair": donor_hair,
            "female": np.asarray(female, np.float64), "age": np.asarray(age, np.float64)}


def _subject(table: MapperTable, i: int) -> Subject:
    ita = float(table.ita[i])
    hair = table.hair[i] if np.all(np.isfinite(table.hair[i])) else None
    return Subject(float(table.female[i]), float(table.age[i]), age_band(float(table.age[i])),
                   None if np.isnan(ita) else ita, hair)


def predicted_fit(config: LockConfig, table: MapperTable, i: int, donors: dict[str, np.ndarray]) -> np.ndarray:
    """(D,) the lock's attribute fit of every donor for subject ``i``, from what is known before rendering."""
    return attribute_fit(config, _subject(table, i), donors["female"], donors["age"], donors["band"], donors["ita"],
                         np.zeros(len(donors["band"])), donors["hair"])


def true_fit(config: LockConfig, table: MapperTable, i: int, donors: dict[str, np.ndarray]) -> np.ndarray:
    """(D,) the same fit as the rendered surrogates read (NaN where not judged)."""
    return attribute_fit(config, _subject(table, i), table.out_female[i], table.out_age[i], donors["band"],
                         donors["ita"], table.tone_off[i], donors["hair"])


def train(table: MapperTable, bank, donors: dict[str, np.ndarray], config: LockConfig,
          s: TrainSettings = TrainSettings()) -> tuple[IdentityMapper, dict]:
    """M_c trained on ``table`` for ``bank``; returns it and what was measured on held-out faces."""
    import torch

    torch.manual_seed(s.seed)
    started = time.perf_counter()
    centre = np.nanmean(bank.descriptors.astype(np.float64), axis=0).astype(np.float32)
    feats = subject_features(table.embedding, centre, table.female, table.age, table.ita, table.hair)
    rng = np.random.default_rng(s.seed)
    order = rng.permutation(len(feats))
    if len(order) < 2:
        raise DeidstreamError(f"{len(order)} training face(s): M_c needs at least two (one held out)")
    cut = max(1, int(len(order) * s.holdout))
    held, fit_on = order[:cut], order[cut:]
    net = MapperNet(bank.descriptors.astype(np.float32), centre, s.hidden, s.code)
    optimiser = torch.optim.Adam(net.parameters(), lr=s.lr, betas=(0.9, 0.999))
    t_feats = torch.from_numpy(feats)
    t_dist = torch.from_numpy(np.nan_to_num(table.distance, nan=0.0))
    t_mask = torch.from_numpy(np.isfinite(table.distance))
    history = []
    for step in range(s.steps):
        idx = torch.from_numpy(rng.choice(fit_on, s.batch))
        loss = ((net(t_feats[idx]) - t_dist[idx]) ** 2)[t_mask[idx]].mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 500 == 0 or step == s.steps - 1:
            history.append({"step": step, "mse": round(float(loss.detach()), 5)})
            log.info("step %d: mse %.5f", step, float(loss.detach()))
    mapper = net.to_mapper(bank.names)
    measured = evaluate(mapper, table, held, donors, config, s)
    provenance = {"settings": asdict(s), "subjects_trained": len(fit_on), "subjects_held_out": len(held),
                  "losses": history, "held_out": measured, "train_seconds": round(time.perf_counter() - started, 1)}
    return dataclasses.replace(mapper, provenance=provenance), provenance


def evaluate(mapper: IdentityMapper, table: MapperTable, rows: np.ndarray, donors: dict[str, np.ndarray],
             config: LockConfig, s: TrainSettings, keys: int = 8) -> dict:
    """The lock's choice on M_c's predictions for the faces ``rows``, under ``keys`` random keyed orders."""
    cfg, rng = config, np.random.default_rng(s.seed + 1)
    feats = subject_features(table.embedding[rows], mapper.centre, table.female[rows], table.age[rows],
                             table.ita[rows], table.hair[rows])
    dist, ok = table.distance[rows], np.isfinite(table.distance[rows])
    passes = ok & (np.nan_to_num(dist, nan=-1.0) >= cfg.tau)
    predicted = mapper.distances(feats)
    fit = np.stack([predicted_fit(cfg, table, i, donors) for i in rows])
    truth = np.stack([true_fit(cfg, table, i, donors) for i in rows])
    n = np.arange(len(rows))
    firsts, kept, tried = [], [], []
    for _ in range(keys):
        score = np.where(ok, mapped_score(cfg, fit, predicted, rng.standard_normal(dist.shape)), -np.inf)
        order = np.argsort(-score, axis=1, kind="stable")
        place = np.argmax(passes[n[:, None], order], axis=1)
        found = passes[n, order[n, place]]
        firsts.append(order[:, 0])
        kept.append(np.where(found, order[n, place], -1))
        tried.append(np.where(found, place + 1, ok.sum(1)))
    firsts, kept = np.array(firsts), np.array(kept)
    got = kept >= 0
    k_dist = np.array([dist[i, k] for row in kept for i, k in enumerate(row) if k >= 0])
    k_fit = np.array([truth[i, k] for row in kept for i, k in enumerate(row) if k >= 0])
    search = np.where(passes, truth + np.minimum(np.nan_to_num(dist) - cfg.tau, 0.2), -np.inf).argmax(1)
    any_pass = passes.any(1)
    moved = feats.copy()
    moved[:, :128] += rng.standard_normal((len(n), 128)).astype(np.float32) * (s.noise / 128 ** 0.5) * SCALE
    key = rng.standard_normal(dist.shape)
    same = [np.where(ok, mapped_score(cfg, f, mapper.distances(x), key), -np.inf).argmax(1)
            for f, x in ((fit, feats), (fit, moved))]
    return {
        "faces": len(rows), "keys": keys,
        "prediction_abs_error": round(float(np.abs(predicted - dist)[ok].mean()), 3),
        "first_passes_tau": round(float(passes[np.repeat(n[None], keys, 0), firsts].mean()), 3),
        "renders_until_one_passes": round(float(np.mean(tried)), 2),
        "kept": round(float(got.mean()), 3),
        "kept_distance_mean": round(float(k_dist.mean()), 3),
        "kept_within_0.05_of_tau": round(float((np.abs(k_dist - cfg.tau) <= 0.05).mean()), 3),
        "kept_fit": round(float(k_fit.mean()), 3),
        "search_rule_distance_mean": round(float(dist[n, search][any_pass].mean()), 3),
        "search_rule_fit": round(float(truth[n, search][any_pass].mean()), 3),
        "random_fit": round(float(np.nanmean(np.where(ok, truth, np.nan))), 3),
        "random_passes_tau": round(float(passes.sum() / ok.sum()), 3),
        "two_keys_same_donor": round(float(np.mean([(kept[a] == kept[b])[got[a] & got[b]].mean()
                                                    for a in range(keys) for b in range(a + 1, keys)])), 3),
        "moved_face_same_first_donor": round(float((same[0] == same[1]).mean()), 3),
    }


def validate(mapper: IdentityMapper, table: MapperTable, donors: dict[str, np.ndarray], config: LockConfig,
             s: TrainSettings = TrainSettings()) -> dict:
    """:func:`evaluate` on every face of ``table`` (real faces: never trained on)."""
    return evaluate(mapper, table, np.arange(len(table.embedding)), donors, config, s)
