"""Where specchat keeps things: platformdirs locations, overridable by environment variables."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import platformdirs

APP = "specchat"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def user_models_toml() -> Path:
    """The user's registry file: overrides and extends the packaged models.toml."""
    return config_dir() / "models.toml"


def data_dir() -> Path:
    return Path(
        os.environ.get("SPECCHAT_DATA_DIR") or platformdirs.user_data_dir(APP, appauthor=False)
    )


def cache_dir() -> Path:
    """specchat's own model cache (GGUFs assembled from package-index sources)."""
    env = os.environ.get("SPECCHAT_CACHE_DIR")
    return (
        Path(env).expanduser() if env else Path(platformdirs.user_cache_dir(APP, appauthor=False))
    )


def hf_cache_dir() -> Path:
    """huggingface_hub's standard cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def packaged_models_toml() -> Path:
    """models.toml shipped inside the package; the repo's top-level file for editable installs."""
    packaged = resources.files("specchat") / "models.toml"
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "models.toml"
