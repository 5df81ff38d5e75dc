"""All configuration in one place, read from ``IMGCAPTION_*`` environment variables.

A ``.env`` file is read only when asked for (``Settings(_env_file=...)``; the CLI takes ``IMGCAPTION_ENV_FILE``), so
running in a directory that happens to hold one changes nothing.

The CLI, the Lambda handler and the library read the same names, so a deployment is configured the same way as a
laptop: ``IMGCAPTION_MODEL=/opt/model IMGCAPTION_PRECISION=int8 ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from imgcaption.generation import GenerationOptions, Precision

DEFAULT_MODEL = "nlpconnect/vit-gpt2-image-captioning"
DEFAULT_REVISION = "dc68f91c06a1ba6f15268e5b9c13ae7a7c514084"
"""The hub commit of DEFAULT_MODEL we pin, so a deployment never picks up a changed model silently."""

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
"""50 MiB: larger than any camera JPEG; refuses giant uploads before they are read."""

DEFAULT_MAX_PIXELS = 100_000_000
"""100 megapixels, checked from the header: far below bomb sizes. Decoding one image at the cap peaks at 0.5–1.7 GB
(5 B a pixel for an RGB PNG, 17 for WebP) before it is reduced; the Lambda derives a lower cap from its memory."""


LEGACY_DB_PATH = Path("~/.imgcaption/captions.db")
"""Where versions before 0.2 kept the store; a database found there keeps being used."""


def default_db_path() -> Path:
    """Where the CLI's SQLite store lives unless ``--db`` / ``IMGCAPTION_DB`` says otherwise.

    The platform's user data directory (``~/.local/share/imgcaption`` on Linux, honouring ``XDG_DATA_HOME``;
    ``~/Library/Application Support/imgcaption`` on macOS; ``%LOCALAPPDATA%\\imgcaption`` on Windows), unless a store
    from an earlier version exists at ``~/.imgcaption/captions.db``.
    """
    legacy = LEGACY_DB_PATH.expanduser()
    if legacy.is_file():
        return legacy
    return platformdirs.user_data_path("imgcaption", appauthor=False) / "captions.db"


class Settings(BaseSettings):
    """Every knob, with the environment variable that sets it (``IMGCAPTION_`` + field name, any case)."""

    model_config = SettingsConfigDict(env_prefix="IMGCAPTION_", env_file=None, extra="ignore")

    model: str = Field(default=DEFAULT_MODEL, description="Hub id or local model directory.")
    revision: str | None = Field(
        default=None, description="Hub revision; defaults to the pinned commit when model is the default hub id."
    )
    precision: Precision = Field(
        default="fp32",
        description="fp32 (exact) or int8 (fast) on the CPU; fp16 or bf16 on a GPU. Unset: the model's own "
        "(int8 for an `imgcaption optimize` artifact), fp16 on a GPU (bf16 where it is supported).",
    )
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda|cuda:\d+|mps)$",
        description="auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps.",
    )
    prompt: str | None = Field(
        default=None,
        min_length=1,
        description="Caption prefix, task token or instruction, for the families that take one (README: families).",
    )
    num_beams: int = Field(default=4, ge=1, le=16)
    max_length: int | None = Field(default=16, ge=2, le=256)
    max_new_tokens: int | None = Field(default=None, ge=1, le=255)
    batch_size: int = Field(default=8, ge=1, le=256)
    threads: int | None = Field(default=None, ge=1, description="Torch threads; default: CPUs this process may use.")
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1)
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
    local_files_only: bool = Field(default=False, description="Never contact the model hub.")
    db: Path = Field(default_factory=default_db_path, description="SQLite store used by the CLI.")

    @property
    def generation(self) -> GenerationOptions:
        return GenerationOptions(
            num_beams=self.num_beams, max_length=self.max_length, max_new_tokens=self.max_new_tokens, prompt=self.prompt
        )

    @property
    def generation_overrides(self) -> dict[str, Any]:
        """The generation settings given explicitly (environment or caller), to lay over a model family's defaults."""
        names = ("num_beams", "max_length", "max_new_tokens", "prompt")
        return {name: getattr(self, name) for name in names if name in self.model_fields_set}

    @property
    def resolved_revision(self) -> str | None:
        if self.revision is None and self.model == DEFAULT_MODEL:
            return DEFAULT_REVISION
        return self.revision
