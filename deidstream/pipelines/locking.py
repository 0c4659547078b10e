"""The surrogate search a pipeline runs, built from the run's configuration (files and live alike)."""

from __future__ import annotations

import numpy as np

from deidstream.config import GeneratorConfig, LockConfig
from deidstream.engine.generator.compose import default_composer
from deidstream.engine.generator.face_render import FaceRenderer
from deidstream.engine.lock import SurrogateLocker
from deidstream.engine.natural_lock import NaturalLocker
from deidstream.errors import ConfigError
from deidstream.networks.mapper import DEFAULT_MAPPER, IdentityMapper
from deidstream.tracking.attributes import AttributeModel
from deidstream.tracking.eid import EidRecognizer


def subject_attributes(descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) P(female) and (n,) apparent age of E_id descriptors, by the shipped attribute model."""
    model = AttributeModel.load()
    return model.female(descriptors), model.age(descriptors)


def make_locker(renderer: FaceRenderer, recognizer: EidRecognizer, config: GeneratorConfig,
                lock: LockConfig) -> NaturalLocker | SurrogateLocker:
    """``config.space``'s search: natural surrogates from donors (the default), or the PCA space's."""
    if config.space == "pca":
        return SurrogateLocker(renderer.model, renderer, recognizer, config.run_key(), lock)
    composer = default_composer()
    return NaturalLocker(renderer, composer, recognizer, config.run_key(), subject_attributes, lock,
                         shape_change=config.shape_change,
                         mapper=trained_mapper(composer.bank.names) if config.chooser == "mapper" else None)


def trained_mapper(names: np.ndarray) -> IdentityMapper:
    """The shipped M_c, checked against the donor bank it must have been trained on."""
    mapper = IdentityMapper.load()
    if not mapper.fits(names):
        raise ConfigError(f"{DEFAULT_MAPPER}: trained on another donor bank; rebuild it (`deidstream build-mapper`)")
    return mapper
