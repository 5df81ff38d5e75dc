"""Options shared by several commands, and turning them into :class:`~imgcaption.settings.Settings`.

This module is imported by every local command at ``--help`` time, so it imports click and nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from imgcaption.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def db_option(function: F) -> F:
    return click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="SQLite file that records every outcome. [default: $IMGCAPTION_DB, else captions.db in the user data "
        "directory, e.g. ~/.local/share/imgcaption]",
    )(function)


def prompt_option(function: F) -> F:
    return click.option(
        "--prompt",
        default=None,
        help="Text given with the image: a caption start for BLIP ('a photography of'), a task token for Florence-2 "
        "(<CAPTION>, <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>), an instruction for chat models. Part of the "
        "caption's identity. [default: $IMGCAPTION_PROMPT, else the model family's]",
    )(function)


def device_option(function: F) -> F:
    return click.option(
        "--device",
        default=None,
        metavar="auto|cpu|cuda|cuda:N|mps",
        help="Where the model runs. [default: $IMGCAPTION_DEVICE or auto: CUDA, then MPS, then the CPU]",
    )(function)


def load_settings(**overrides: Any) -> Settings:
    """Settings from ``IMGCAPTION_*`` (and the ``.env`` file ``IMGCAPTION_ENV_FILE`` names, if any), with the
    options given on the command line on top."""
    import os

    from pydantic import ValidationError

    from imgcaption.settings import Settings

    given = {key: value for key, value in overrides.items() if value is not None}
    env_file = os.environ.get("IMGCAPTION_ENV_FILE") or None
    if env_file is not None and not Path(env_file).is_file():
        raise click.UsageError(f"IMGCAPTION_ENV_FILE names {env_file}, which is not a file")
    try:
        return Settings(_env_file=env_file, **given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}" for error in exc.errors()
        )
        raise click.UsageError(f"invalid settings ({problems})") from exc


class UsageFailure(click.ClickException):
    """A problem with how the command was run or configured (model, database, output file): exit status 2."""

    exit_code = EXIT_USAGE


def quiet_model_libraries() -> None:
    """Keep download bars, retry chatter and advice about generate() off a CLI user's terminal.

    Explicit settings win: ``TRANSFORMERS_VERBOSITY=info imgcaption caption ...`` still shows everything.
    """
    import importlib.util
    import os

    if "TRANSFORMERS_VERBOSITY" in os.environ:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Either may be absent: an install with only the ONNX runtime has tokenizers (and so huggingface_hub) at most.
    if importlib.util.find_spec("huggingface_hub") is not None:
        from huggingface_hub.utils import logging as hub_logging

        # huggingface_hub's "Retrying in 8s" lines while offline: the command reports the resulting error itself.
        hub_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    if importlib.util.find_spec("transformers") is not None:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
