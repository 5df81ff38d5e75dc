"""``imgcaption demo``: caption the bundled example photos into the store and write an HTML gallery.

It uses the configured model (``IMGCAPTION_MODEL``, by default the pinned real model) when that loads. Offline it
cannot, and the demo, and only the demo, falls back so that it still shows the whole tool working:

1. the tiny scene captioner trained on synthetic scenes (``imgcaption.testing.scene_model``), captioning generated
   scenes, which it describes correctly; real photos need the real model;
2. otherwise a full-size model with random weights built locally, whose captions are meaningless (said loudly, on
   the terminal and in the gallery).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from imgcaption_cli.options import EXIT_USAGE, UsageFailure, db_option, load_settings, quiet_model_libraries

if TYPE_CHECKING:
    from imgcaption.captioner import Captioner
    from imgcaption.ports import Outcome
    from imgcaption.settings import Settings
    from imgcaption_cli.running import Terminal

DEFAULT_GALLERY = Path("imgcaption-demo.html")
SCENE_COUNT = 8
REAL_MODEL_HINT = (
    "Real photos need the real model: on a machine with network run "
    "`huggingface-cli download nlpconnect/vit-gpt2-image-captioning --local-dir DIR` and set IMGCAPTION_MODEL=DIR."
)


@dataclass
class DemoPlan:
    """Which model captions what, and what the person must be told about it."""

    captioner: Captioner
    images: list[Path]
    notice: str | None = None
    expected: dict[str, str] = field(default_factory=dict)
    """Scene image path → its true caption, to print beside the model's."""


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@db_option
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_GALLERY, show_default=True,
    help="Where to write the HTML gallery.",
)  # fmt: skip
@click.option("--random-model-size", type=click.Choice(("full", "tiny")), default="full", hidden=True)
def demo(db: Path | None, output: Path, random_model_size: Literal["full", "tiny"]) -> None:
    """Caption the bundled example images into the store and write an HTML gallery.

    Uses the configured model (IMGCAPTION_MODEL, default: the real vit-gpt2 model). Where that cannot be loaded
    (no network), the demo falls back to a tiny model trained on synthetic scenes, or else to a random-weight
    model whose captions are meaningless. `imgcaption caption` never falls back.
    """
    from imgcaption.local.gallery import render_gallery
    from imgcaption.local.writers import display_path
    from imgcaption_cli.caption_command import open_store
    from imgcaption_cli.running import Terminal, print_summary, run_captioning

    settings = load_settings(db=db)
    terminal = Terminal()
    plan = plan_demo(settings, terminal, random_model_size=random_model_size)
    if plan.notice:
        terminal.loud(plan.notice)

    from imgcaption.local.files import LocalFileSource
    from imgcaption.local.writers import TextWriter

    store = open_store(settings)
    with contextlib.closing(store):
        result = run_captioning(
            LocalFileSource(plan.images),
            store,
            plan.captioner,
            terminal,
            batch_size=settings.batch_size,
            writer=TextWriter(terminal.stdout()),
            collect=True,
            annotate=_expected_note(plan.expected),
        )
        print_summary(result, terminal, store_path=str(store.path))
    try:
        output.write_text(
            render_gallery(result.outcomes, title="imgcaption demo", notice=plan.notice), encoding="utf-8"
        )
    except OSError as exc:
        raise UsageFailure(f"cannot write the gallery {output}: {exc.strerror or exc}") from exc
    terminal.info(f"Gallery: {display_path(str(output.resolve()))} (open it in a browser)")
    if plan.notice:
        terminal.loud(plan.notice)
    sys.exit(result.exit_code)


def plan_demo(settings: Settings, terminal: Terminal, *, random_model_size: Literal["full", "tiny"]) -> DemoPlan:
    """The configured model on the example photos, else the scene captioner on scenes, else random weights."""
    from imgcaption.captioner import Captioner
    from imgcaption.errors import ConfigurationError, ModelLoadError

    quiet_model_libraries()
    try:
        with terminal.status(f"Loading {settings.model}…"):
            captioner = Captioner.from_pretrained(settings=settings)
    except ConfigurationError as exc:
        raise UsageFailure(str(exc)) from exc
    except ModelLoadError as exc:
        terminal.warn(f"the configured model could not be loaded: {exc.message}")
    else:
        return DemoPlan(captioner, example_images(terminal))

    scene_plan = _scene_plan(settings, terminal)
    if scene_plan is not None:
        return scene_plan
    return _random_plan(settings, terminal, random_model_size)


def demo_dir() -> Path:
    """Files the demo generates live beside the default store (``demo/`` in the user data directory)."""
    from imgcaption.settings import default_db_path

    return default_db_path().parent / "demo"


def example_images(terminal: Terminal) -> list[Path]:
    """The example photos, painted from their fixed seed: the same files as the repository's ``examples/``, with no
    path into a checkout, so an installed wheel runs the same demo."""
    from imgcaption.local.examples import write_example_images

    target = demo_dir() / "examples"
    terminal.info(f"painting the example photos into {target}")
    return write_example_images(target)


def _scene_plan(settings: Settings, terminal: Terminal) -> DemoPlan | None:
    from imgcaption.captioner import Captioner
    from imgcaption.errors import ModelLoadError

    try:  # imported by name: an installation may lack the scene captioner, and then the demo uses random weights
        scene_model = importlib.import_module("imgcaption.testing.scene_model")
        from imgcaption.testing.scenes import HELD_OUT_SEED_OFFSET, generate_scene
    except ImportError as exc:
        terminal.info(f"the trained scene captioner is not in this installation ({exc}); using random weights")
        return None
    try:
        path = Path(scene_model.scene_captioner_path())
    except OSError as exc:
        terminal.info(f"the trained scene captioner is not available ({exc}); using random weights")
        return None
    try:
        with terminal.status("Loading the scene captioner…"):
            captioner = Captioner.from_pretrained(str(path), settings=settings)
    except ModelLoadError as exc:
        terminal.warn(f"the scene captioner could not be loaded ({exc.message}); using random weights")
        return None
    target = demo_dir() / "scenes"
    target.mkdir(parents=True, exist_ok=True)
    images, expected = [], {}
    for index in range(SCENE_COUNT):
        seed = HELD_OUT_SEED_OFFSET + index  # never seen in training
        scene = generate_scene(seed)
        image_path = target / f"scene-{seed}.png"
        scene.image.save(image_path)
        images.append(image_path)
        expected[str(image_path.resolve())] = scene.caption
    notice = (
        "The real captioning model could not be loaded, so this demo uses a tiny model trained on synthetic scenes "
        f"(two coloured shapes) and captions such scenes. {REAL_MODEL_HINT}"
    )
    return DemoPlan(captioner, images, notice, expected)


def _random_plan(settings: Settings, terminal: Terminal, size: Literal["full", "tiny"]) -> DemoPlan:
    from imgcaption.backends.base import PROVENANCE_FILE
    from imgcaption.captioner import Captioner
    from imgcaption.errors import ModelLoadError
    from imgcaption.testing import save_random_model

    building = terminal.status(f"Building a {size}-size model with random weights (about a minute)…")
    with tempfile.TemporaryDirectory(prefix="imgcaption-random-", ignore_cleanup_errors=True) as scratch, building:
        directory = save_random_model(Path(scratch) / "model", size)
        # A stable, self-describing model id (not the temporary path), so reruns replace their records.
        (directory / PROVENANCE_FILE).write_text(
            json.dumps({"model_id": f"imgcaption/random-vit-gpt2-{size}", "revision": "seed-0"}), encoding="utf-8"
        )
        try:
            captioner = Captioner.from_pretrained(str(directory), settings=settings)
        except ModelLoadError as exc:  # pragma: no cover - the vendored files always load
            terminal.error(str(exc))
            sys.exit(EXIT_USAGE)
    notice = (
        "THESE CAPTIONS ARE MEANINGLESS. The real captioning model could not be loaded, so this demo runs a model "
        "with the real architecture and RANDOM WEIGHTS: it shows the tool working end to end (decoding, batching, "
        f"the store, the gallery), not what the captions would say. {REAL_MODEL_HINT}"
    )
    return DemoPlan(captioner, example_images(terminal), notice)


def _expected_note(expected: dict[str, str]) -> Callable[[Outcome], str | None] | None:
    if not expected:
        return None

    def note(outcome: Outcome) -> str | None:
        truth = expected.get(outcome.ref.uri)
        if truth is None:
            return None
        if getattr(outcome.result, "text", None) == truth:
            return "  ✓ the true caption"
        return f"  ✗ expected: {truth}"

    return note
