"""models.toml: schema, locations, registry merge (turning a pair into engine settings is
specchat.pair_settings: it reads the files, which sources fetch)."""

from __future__ import annotations

from specchat.config.registry import Registry, load_registry
from specchat.config.schema import ModelConfig, PairConfig, PypiPart

__all__ = [
    "ModelConfig",
    "PairConfig",
    "PypiPart",
    "Registry",
    "load_registry",
]
