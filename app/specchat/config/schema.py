"""The models.toml schema (pydantic): a pair is a target, an optional draft, and spec defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from specchat.engine.limits import MAX_DRAFT, draft_order, violation

SHA256 = re.compile(r"^[0-9a-f]{64}$")
SOURCE_KEYS = ("repo", "path", "pypi")
# TOML values are typed: "yes" is not a boolean and 2 is not a flag.
Bool = Annotated[bool, Strict()]
Int = Annotated[int, Strict()]


def _within(name: str) -> AfterValidator:
    """The bounds of setting `name` in specchat.engine.limits, the one table of them."""

    def check(value: float) -> float:
        why = violation(name, value)
        if why is not None:
            raise ValueError(why)
        return value

    return AfterValidator(check)


class PypiPart(BaseModel):
    """One member file inside one package on the Python package index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: str = Field(min_length=1)
    version: str = Field(min_length=1)
    member: str = Field(min_length=1)  # path of the file inside the wheel/archive


def _check_sha(value: str | None) -> str | None:
    if value is not None and not SHA256.match(value.lower()):
        raise ValueError("must be 64 hexadecimal characters")
    return value.lower() if value is not None else None


class ModelConfig(BaseModel):
    """Where one GGUF comes from (exactly one source kind) and how to load it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # source: Hugging Face
    repo: str | None = Field(default=None, pattern=r"^[\w.\-]+/[\w.\-]+$")
    file: str | None = None  # file name in the repo; glob allowed (split GGUFs: all parts)
    revision: str | None = None
    # source: local file
    path: Path | None = None
    # source: data files inside packages on the Python package index
    pypi: tuple[PypiPart, ...] | None = None
    filename: str | None = None  # name of the assembled file in specchat's cache
    # integrity (hf: one hash per file, in order, for split GGUFs; pypi: the assembled file)
    sha256: str | tuple[str, ...] | None = None
    size_mb: float | None = Field(default=None, gt=0)  # approximate, shown before download

    # load settings
    n_gpu_layers: Int | Literal["auto"] = "auto"
    n_ctx: Annotated[Int, _within("n_ctx")] = 4096
    n_threads: Annotated[Int, _within("n_threads")] | None = None
    flash_attn: Bool | None = None
    main_gpu: Int = Field(default=0, ge=0)
    use_extra_bufts: Bool = False

    @field_validator("n_gpu_layers", mode="before")
    @classmethod
    def _ngl(cls, value: object) -> object:
        ok_int = isinstance(value, int) and not isinstance(value, bool) and value >= -1
        if not ok_int and value != "auto":
            raise ValueError('must be -1 (all), 0 or more, or "auto"')
        return value

    @field_validator("sha256")
    @classmethod
    def _sha(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        if isinstance(value, tuple):
            return tuple(_check_sha(v) or "" for v in value)
        return _check_sha(value)

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str | None) -> str | None:
        if value is not None and (not value or "/" in value or "\\" in value or value[0] == "."):
            raise ValueError("must be a plain file name")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        given = [k for k in SOURCE_KEYS if getattr(self, k) is not None]
        if len(given) != 1:
            which = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one source: repo (+file), path or pypi (got {which})")
        if self.repo is not None and not self.file:
            raise ValueError("a Hugging Face source needs 'file' (a file name or glob)")
        if self.repo is None and (self.file or self.revision):
            raise ValueError("'file' and 'revision' only go with 'repo'")
        if self.pypi is not None:
            if not self.pypi:
                raise ValueError("'pypi' needs at least one part")
            if not isinstance(self.sha256, str) or not self.filename:
                raise ValueError("a pypi source needs 'sha256' (one hash) and 'filename'")
        elif self.filename is not None:
            raise ValueError("'filename' only goes with 'pypi'")
        if self.path is not None and isinstance(self.sha256, tuple):
            raise ValueError("a local 'path' takes a single sha256")
        return self

    @property
    def kind(self) -> str:
        return "hf" if self.repo else "pypi" if self.pypi else "path"

    @property
    def label(self) -> str:
        """A short human name for the source."""
        if self.repo:
            return f"{self.repo}/{self.file}" + (f"@{self.revision}" if self.revision else "")
        if self.pypi:
            return f"{self.filename} (package index: {self.pypi[0].package}…)"
        return str(self.path)


class PairConfig(BaseModel):
    """A target model, an optional draft, and default speculative settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str = ""
    target: ModelConfig
    draft: ModelConfig | None = None
    cross_vocab: Bool = False
    draft_max: Annotated[Int, _within("draft_max")] = 8
    draft_min: Annotated[Int, _within("draft_min")] = 0
    suffix_max: Annotated[Int, _within("suffix_max")] = MAX_DRAFT
    # 0 = off: the adaptive controller sizes drafts from measured acceptance
    p_min: Annotated[float, _within("p_min")] = 0.0
    adaptive: Bool = True
    chat_template: str | None = None
    # llama.cpp RPC servers ("HOST:PORT") that take the target's layers; the draft stays local
    rpc: tuple[str, ...] = ()

    @field_validator("rpc", mode="before")
    @classmethod
    def _rpc(cls, value: object) -> tuple[str, ...]:
        from specchat.engine.llama.rpc import parse_endpoints
        from specchat.errors import RpcEndpointError

        if isinstance(value, (list, tuple)) and not value:
            return ()
        if not isinstance(value, (str, list, tuple)):
            raise ValueError('must be a list of "HOST:PORT" strings')
        try:
            return parse_endpoints(value)
        except RpcEndpointError as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _draft_bounds(self) -> PairConfig:
        order = draft_order(self.draft_min, self.draft_max)
        if order is not None:
            raise ValueError(order)
        if "\n" in self.description:
            raise ValueError("description must be one line")
        return self
