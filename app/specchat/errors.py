"""User-facing errors: each carries one line that the CLI prints before exiting with code 2."""

from __future__ import annotations

import re
from collections.abc import Callable


class SpecchatError(Exception):
    """A problem the user can fix (bad file, bad flag, bad config). Printed as one line, exit 2."""

    exit_code = 2

    def __init__(self, message: str, *, settings: tuple[str, ...] = ()) -> None:
        super().__init__(" ".join(message.split()))  # always one line
        # the settings the message names, by their models.toml keys (front ends re-spell them)
        self.settings = settings

    @property
    def message(self) -> str:
        return str(self)

    def spelled(self, spell: Callable[[str], str]) -> str:
        """The message with each setting it names written the front end's way (a CLI flag)."""
        text = self.message
        for name in self.settings:
            # the name as a word of its own, not part of a file name or another word
            text = re.sub(rf"(?<![\w./\\-]){re.escape(name)}(?![\w/\\-]|\.\w)", spell(name), text)
        return text


class ModelLoadError(SpecchatError):
    """A GGUF file is missing, corrupt, or could not be loaded."""


class VocabMismatchError(SpecchatError):
    """Draft and target do not share a vocabulary (and cross-vocabulary drafting is off)."""


# how a VocabMismatchError ends (settings=("cross_vocab",))
CROSS_VOCAB_HINT = "; to draft across vocabularies, turn on cross_vocab"


class ContextOverflowError(SpecchatError):
    """The prompt alone does not fit in the context window."""


class ConfigError(SpecchatError):
    """models.toml or another config file is malformed."""


class DownloadError(SpecchatError):
    """A model could not be fetched (no network, wrong checksum, missing in offline mode)."""


class GpuOffloadError(SpecchatError):
    """GPU offload failed (out of GPU memory, no GPU build)."""


class LoadCancelled(SpecchatError):
    """Loading a model was cancelled (the user quit or chose another model meanwhile)."""


class RpcError(SpecchatError):
    """A problem with llama.cpp's RPC backend (remote target layers)."""


class RpcEndpointError(RpcError):
    """An RPC server address is not HOST:PORT."""


class RpcUnavailableError(RpcError):
    """This llama-cpp-python build was compiled without the RPC backend."""


class RpcConnectionError(RpcError):
    """An RPC server could not be reached, did not answer, or stopped answering."""
