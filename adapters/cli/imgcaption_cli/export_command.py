"""``imgcaption export``: everything in the store, as JSONL/JSON/CSV for programs or an HTML gallery for people."""

from __future__ import annotations

from pathlib import Path

import click

from imgcaption_cli.options import UsageFailure, db_option, load_settings

EXPORT_FORMATS = ("jsonl", "json", "csv", "html")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-f", "--format", "export_format", type=click.Choice(EXPORT_FORMATS), default="jsonl", show_default=True,
    help="html: a self-contained gallery with embedded thumbnails, failures highlighted.",
)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--status", type=click.Choice(("ok", "failed")), default=None, help="Only captions, or only failures.")
@click.option("--no-thumbnails", is_flag=True, help="html: leave out the images (smaller file).")
@db_option
def export(export_format: str, output: Path | None, status: str | None, no_thumbnails: bool, db: Path | None) -> None:
    """Dump every recorded outcome (one per image and model/options) from the store."""
    import contextlib
    import sys

    from imgcaption.errors import StoreError
    from imgcaption.local.sqlite_store import SQLiteStore
    from imgcaption_cli.running import EXIT_BROKEN_PIPE, silence_stdout

    settings = load_settings(db=db)
    if not settings.db.expanduser().is_file():
        raise UsageFailure(f"no caption database at {settings.db}; run `imgcaption caption` first or pass --db")
    try:
        store = SQLiteStore(settings.db)
    except StoreError as exc:
        raise UsageFailure(str(exc)) from exc
    try:
        stream = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    except OSError as exc:
        store.close()
        raise UsageFailure(f"cannot write {output}: {exc.strerror or exc}") from exc
    count = 0
    try:
        with store, stream if output else contextlib.nullcontext():
            outcomes = (o for o in store.outcomes() if status is None or o.result.status == status)
            if export_format == "html":
                from imgcaption.local.gallery import render_gallery

                chosen = list(outcomes)
                count = len(chosen)
                stream.write(render_gallery(chosen, title=f"imgcaption: {settings.db}", thumbnails=not no_thumbnails))
            else:
                from imgcaption.local.writers import make_writer

                writer = make_writer(export_format, stream)
                for outcome in outcomes:  # streamed: exporting a large store needs no memory
                    writer.write(outcome)
                    count += 1
                writer.close()
    except StoreError as exc:
        raise UsageFailure(str(exc)) from exc
    except BrokenPipeError:
        silence_stdout()
        sys.exit(EXIT_BROKEN_PIPE)
    if output:
        click.echo(f"exported {count} records to {output}", err=True)
