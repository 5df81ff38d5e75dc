"""``imgcaption caption``: caption files, directories and glob patterns into the store and onto stdout.

Only click is imported at module level, so ``imgcaption caption --help`` is instant; the model loads on use.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from imgcaption_cli.options import (
    EXIT_OK,
    UsageFailure,
    db_option,
    device_option,
    load_settings,
    prompt_option,
    quiet_model_libraries,
)

if TYPE_CHECKING:
    from imgcaption.captioner import Captioner
    from imgcaption.local.no_store import NoStore
    from imgcaption.local.sqlite_store import SQLiteStore
    from imgcaption.settings import Settings
    from imgcaption_cli.running import FileOutput, Terminal

OUTPUT_FORMATS = ("text", "json", "jsonl", "csv")
PRECISIONS = ("fp32", "int8", "fp16", "bf16")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, required=True)
@click.option("-r", "--recursive", is_flag=True, help="Include images in subdirectories.")
@click.option(
    "-m", "--model", default=None,
    help="Hub id or local model directory. [default: $IMGCAPTION_MODEL or nlpconnect/vit-gpt2-image-captioning]",
)  # fmt: skip
@click.option("--revision", default=None, help="Hub revision (commit) of --model.")
@click.option("-b", "--batch-size", type=click.IntRange(1, 256), default=None, help="Images per forward pass.")
@click.option("--beams", type=click.IntRange(1, 16), default=None, help="Beam width (1 = greedy). [default: 4]")
@click.option("--max-new-tokens", type=click.IntRange(1, 255), default=None, help="Caption length budget in tokens.")
@click.option(
    "--precision", type=click.Choice(PRECISIONS), default=None,
    help="fp32 (exact) or int8 (faster) on the CPU; fp16 or bf16 on a GPU. [default: fp32; fp16/bf16 on a GPU]",
)  # fmt: skip
@prompt_option
@device_option
@click.option(
    "-f", "--format", "output_format", type=click.Choice(OUTPUT_FORMATS), default="text", show_default=True,
    help="text: captions for people; json/jsonl/csv include failures as records.",
)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write results here.")
@click.option("--sidecar", is_flag=True, help="Also write photo.txt next to each photo.jpg.")
@click.option(
    "--xmp", is_flag=True,
    help="Also write the caption as alt text (XMP dc:description and IPTC AltTextAccessibility) into photo.xmp "
    "next to each photo.jpg, keeping the sidecar's other fields. Needs exiftool.",
)  # fmt: skip
@click.option(
    "--embed", is_flag=True,
    help="Also write that alt text into the image itself (JPEG, PNG, WebP, TIFF; the pixels are not re-encoded), "
    "keeping the untouched file as photo.jpg_original unless --overwrite. Needs exiftool.",
)  # fmt: skip
@click.option(
    "--overwrite", is_flag=True,
    help="Let --sidecar replace existing sidecar files, and --xmp/--embed replace a different description; "
    "--embed then edits the image in place, with no _original copy.",
)  # fmt: skip
@click.option("--sidecar-ext", default=".txt", help="Sidecar extension, e.g. .caption (kohya's training scripts).")
@click.option("--prefix", default="", help="Text written before each sidecar caption, e.g. a trigger word and ', '.")
@click.option("--suffix", default="", help="Text written after each sidecar caption.")
@click.option(
    "--skip-existing", is_flag=True,
    help="Skip images already captioned with the same model and options (with --sidecar: or that have a sidecar).",
)  # fmt: skip
@db_option
@click.option("--no-store", is_flag=True, help="Record nothing in the database: results go to stdout/--output only.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary; errors only.")
@click.option("-v", "--verbose", is_flag=True, help="List skipped files and kept sidecars.")
def caption(
    paths: tuple[str, ...],
    recursive: bool,
    model: str | None,
    revision: str | None,
    batch_size: int | None,
    beams: int | None,
    max_new_tokens: int | None,
    precision: str | None,
    prompt: str | None,
    device: str | None,
    output_format: str,
    output: Path | None,
    sidecar: bool,
    xmp: bool,
    embed: bool,
    overwrite: bool,
    sidecar_ext: str,
    prefix: str,
    suffix: str,
    skip_existing: bool,
    db: Path | None,
    no_store: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Caption PATHS: image files, directories, or quoted glob patterns such as 'photos/**/*.jpg'.

    Every image ends as exactly one record in the store: a caption or a failure with its reason. Files found in a
    directory that are not images are skipped; a file you name that is not an image is a failure.

    Alt text (--xmp, --embed) is written only where the file has none or the same caption: a description that
    a person or another tool wrote is kept (the run says how many) unless you add --overwrite.

    \b
    Exit status: 0 all captioned, 1 some failed (the rest are recorded),
                 2 usage or configuration error (nothing captioned), 130 interrupted.
    """
    if overwrite and not (sidecar or xmp or embed):
        raise click.UsageError("--overwrite only applies to --sidecar, --xmp or --embed")
    sidecar_only = {
        "--sidecar-ext": sidecar_ext != ".txt",
        "--prefix": prefix,
        "--suffix": suffix,
    }
    for name, given in sidecar_only.items():
        if given and not sidecar:
            raise click.UsageError(f"{name} only applies to --sidecar")
    if xmp and sidecar and sidecar_ext.lower() == ".xmp":
        raise click.UsageError("--sidecar-ext .xmp would write plain text where --xmp writes its XMP sidecar")
    if xmp or embed:
        check_exiftool()
    if no_store and (skip_existing or db is not None):
        raise click.UsageError("--no-store keeps no database, so it cannot be combined with --skip-existing or --db")
    settings = load_settings(
        model=model,
        revision=revision,
        batch_size=batch_size,
        num_beams=beams,
        max_new_tokens=max_new_tokens,
        precision=precision,
        prompt=prompt,
        device=device,
        db=db,
    )

    from imgcaption.local.files import LocalFileSource
    from imgcaption.local.no_store import NoStore
    from imgcaption.local.sidecars import SidecarWriter, SkippingCaptionedSidecars
    from imgcaption.local.writers import make_writer
    from imgcaption_cli.running import FileOutput, Terminal, first_inputs, print_summary, run_captioning

    terminal = Terminal(quiet=quiet, verbose=verbose)
    source = LocalFileSource(paths, recursive=recursive)
    refs = first_inputs(source, terminal)
    if not refs:
        terminal.warn(f"no images found in {', '.join(paths)}" + ("" if recursive else " (try --recursive)"))
        sys.exit(EXIT_OK)

    try:  # the writer refuses an extension that could leave the image's directory
        sidecars = SidecarWriter(overwrite=overwrite, extension=sidecar_ext, prefix=prefix, suffix=suffix)
    except ValueError as exc:
        raise click.UsageError(f"--sidecar-ext: {exc}") from exc
    store: SQLiteStore | NoStore = NoStore() if no_store else open_store(settings)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(store.close)
        files = [FileOutput(sidecars)] if sidecar else []
        if xmp or embed:
            files += alt_text_outputs(cleanup, xmp=xmp, embed=embed, overwrite=overwrite)
        captioner = load_captioner(settings, terminal)
        stream = cleanup.enter_context(open_output(output, terminal))
        bare = output_format == "text" and len(refs) == 1 and refs[0].explicit
        result = run_captioning(
            source,
            SkippingCaptionedSidecars(store, sidecars) if sidecar and skip_existing else store,
            captioner,
            terminal,
            batch_size=settings.batch_size,
            skip_existing=skip_existing,
            writer=make_writer(output_format, stream, bare_text=bare),
            files=files,
        )
        print_summary(result, terminal, store_path=str(store.path or "none (--no-store)"))
    sys.exit(result.exit_code)


def check_exiftool() -> None:
    """--xmp and --embed write through exiftool: without it, a usage error that says how to install it."""
    from imgcaption.local.metadata import exiftool_missing

    problem = exiftool_missing()
    if problem:
        raise UsageFailure(problem)


def alt_text_outputs(cleanup: contextlib.ExitStack, *, xmp: bool, embed: bool, overwrite: bool) -> list[FileOutput]:
    """The alt text writers asked for, sharing one exiftool process that ``cleanup`` stops."""
    from imgcaption.local.metadata import AltTextWriter, ExifTool, ExifToolUnavailable
    from imgcaption_cli.running import FileOutput

    try:
        exiftool = cleanup.enter_context(ExifTool())
    except ExifToolUnavailable as exc:
        raise UsageFailure(str(exc)) from exc
    kept = "they have this caption already" if overwrite else "--overwrite replaces them"
    outputs = []
    if xmp:
        writer = AltTextWriter(exiftool, overwrite=overwrite)
        outputs.append(FileOutput(writer, "XMP sidecar", "XMP sidecars", kept_note=kept))
    if embed:
        writer = AltTextWriter(exiftool, embed=True, overwrite=overwrite)
        outputs.append(FileOutput(writer, "alt text in", "alt text in images", kept_note=kept))
    return outputs


def open_store(settings: Settings) -> SQLiteStore:
    """The SQLite store named by the settings, or a usage error saying why it cannot be opened."""
    from imgcaption.errors import StoreError
    from imgcaption.local.sqlite_store import SQLiteStore

    try:
        return SQLiteStore(settings.db)
    except StoreError as exc:
        raise UsageFailure(str(exc)) from exc


def load_captioner(settings: Settings, terminal: Terminal, model: str | None = None) -> Captioner:
    """The configured model, or a usage error that says what was tried; ``caption`` never falls back."""
    from imgcaption.captioner import Captioner
    from imgcaption.errors import ConfigurationError, ModelLoadError

    quiet_model_libraries()
    with terminal.status(f"Loading {model or settings.model}…"):
        try:
            return Captioner.from_pretrained(model, settings=settings)
        except (ModelLoadError, ConfigurationError) as exc:
            raise UsageFailure(str(exc)) from exc


@contextlib.contextmanager
def open_output(output: Path | None, terminal: Terminal) -> Iterator[TextIO]:
    """``--output`` opened for writing (UTF-8, no newline translation: CSV controls its own), else stdout."""
    if output is None:
        yield terminal.stdout()
        return
    try:
        handle: TextIO = output.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise UsageFailure(f"cannot write {output}: {exc.strerror or exc}") from exc
    with handle:
        yield handle
