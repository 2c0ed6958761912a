"""Model sources: local files, Hugging Face (huggingface_hub's cache), and the package index."""

from __future__ import annotations

from specchat.sources.cancel import DownloadCancelled
from specchat.sources.fetch import is_downloaded, local_size, resolve_model, resolve_model_files

__all__ = [
    "DownloadCancelled",
    "is_downloaded",
    "local_size",
    "resolve_model",
    "resolve_model_files",
]
