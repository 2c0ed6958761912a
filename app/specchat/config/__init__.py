"""models.toml: schema, locations, registry merge, and conversion to engine settings."""

from __future__ import annotations

from specchat.config.registry import Registry, load_registry
from specchat.config.schema import ModelConfig, PairConfig, PypiPart
from specchat.config.settings import to_model_settings, to_pair_settings, to_spec_settings

__all__ = [
    "ModelConfig",
    "PairConfig",
    "PypiPart",
    "Registry",
    "load_registry",
    "to_model_settings",
    "to_pair_settings",
    "to_spec_settings",
]
