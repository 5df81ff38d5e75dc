"""``imgcaption export``: everything in the store, as JSONL/JSON/CSV for programs or an HTML gallery for people.

The store is the local SQLite database, or with ``--table`` the DynamoDB table the Lambda writes (the ``aws`` extra):
its captions and failures, read by :meth:`imgcaption_aws.store.DynamoDBStore.outcomes` (tombstones of deleted objects
and crash-isolation counters are not outcomes), optionally only those under an ``s3://`` prefix. Images in S3 cannot
be embedded; ``--presign`` shows them in the gallery through presigned GET URLs instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from imgcaption_cli.options import UsageFailure, db_option, load_settings

if TYPE_CHECKING:
    from imgcaption.local.gallery import ImageUrl
    from imgcaption.ports import Outcome

EXPORT_FORMATS = ("jsonl", "json", "csv", "html")
PRESIGN_MAX_S = 7 * 24 * 3600
"""The longest a SigV4 presigned URL may live."""


@dataclass
class _Source:
    """The outcomes to export, what the gallery is titled, and where its pictures come from (None: thumbnails)."""

    outcomes: Iterable[Outcome]
    title: str
    image_url: ImageUrl | None = None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-f", "--format", "export_format", type=click.Choice(EXPORT_FORMATS), default="jsonl", show_default=True,
    help="html: a self-contained gallery with embedded thumbnails, failures highlighted.",
)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here instead of stdout.")
@click.option("--status", type=click.Choice(("ok", "failed")), default=None, help="Only captions, or only failures.")
@click.option("--no-thumbnails", is_flag=True, help="html: leave out the images (smaller file).")
@db_option
@click.option(
    "--table", "table_name", default=None, help="Read the DynamoDB table the Lambda writes instead (aws extra)."
)
@click.option("--endpoint-url", default=None, help="--table: AWS endpoint, e.g. http://127.0.0.1:5000 (moto_server).")
@click.option("--region", default=None, help="--table: AWS region. [default: the SDK's own resolution]")
@click.option("--prefix", default=None, metavar="s3://BUCKET/PREFIX", help="--table: only objects under this prefix.")
@click.option(
    "--presign", "presign_s", type=click.IntRange(1, PRESIGN_MAX_S), default=None, is_flag=False, flag_value=3600,
    metavar="[SECONDS]",
    help="--table, html: show each image through a presigned S3 GET URL valid this long (bare flag: 3600). "
    "Signed for --region, which must be the bucket's; anyone holding the file can fetch the images until then. "
    "[default: no pictures]",
)  # fmt: skip
def export(
    export_format: str,
    output: Path | None,
    status: str | None,
    no_thumbnails: bool,
    db: Path | None,
    table_name: str | None,
    endpoint_url: str | None,
    region: str | None,
    prefix: str | None,
    presign_s: int | None,
) -> None:
    """Dump every recorded outcome (one per image and model/options) from the store."""
    import contextlib
    import sys

    from imgcaption.errors import StoreError
    from imgcaption_cli.running import EXIT_BROKEN_PIPE, silence_stdout

    if presign_s is not None and (export_format != "html" or no_thumbnails):
        raise UsageFailure(
            "--presign puts pictures in the html gallery: use it with --format html, without --no-thumbnails"
        )
    with contextlib.ExitStack() as resources:
        if table_name is None:
            aws_only = {"--endpoint-url": endpoint_url, "--region": region, "--prefix": prefix, "--presign": presign_s}
            given = [name for name, value in aws_only.items() if value is not None]
            if given:
                raise UsageFailure(f"{', '.join(given)}: only with --table TABLE (they are about a DynamoDB table)")
            source = _sqlite_source(db, resources)
        else:
            if db is not None:
                raise UsageFailure("--db and --table name two different stores: give one of them")
            source = _dynamodb_source(table_name, endpoint_url, region, prefix, presign_s)
        try:
            stream: TextIO = (
                resources.enter_context(output.open("w", encoding="utf-8", newline="")) if output else sys.stdout
            )
        except OSError as exc:
            raise UsageFailure(f"cannot write {output}: {exc.strerror or exc}") from exc
        try:
            count = _write(source, export_format, stream, status=status, thumbnails=not no_thumbnails)
        except StoreError as exc:
            raise UsageFailure(str(exc)) from exc
        except BrokenPipeError:
            silence_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
    if output:
        click.echo(f"exported {count} records to {output}", err=True)


def _write(source: _Source, export_format: str, stream: TextIO, *, status: str | None, thumbnails: bool) -> int:
    outcomes = (o for o in source.outcomes if status is None or o.result.status == status)
    if export_format == "html":
        from imgcaption.local.gallery import render_gallery

        chosen = list(outcomes)
        stream.write(render_gallery(chosen, title=source.title, thumbnails=thumbnails, image_url=source.image_url))
        return len(chosen)
    from imgcaption.local.writers import make_writer

    count = 0
    writer = make_writer(export_format, stream)
    for outcome in outcomes:  # streamed: exporting a large store needs no memory
        writer.write(outcome)
        count += 1
    writer.close()
    return count


def _sqlite_source(db: Path | None, resources: Any) -> _Source:
    from imgcaption.errors import StoreError
    from imgcaption.local.sqlite_store import SQLiteStore

    settings = load_settings(db=db)
    if not settings.db.expanduser().is_file():
        raise UsageFailure(f"no caption database at {settings.db}; run `imgcaption caption` first or pass --db")
    try:
        store = resources.enter_context(SQLiteStore(settings.db))
    except StoreError as exc:
        raise UsageFailure(str(exc)) from exc
    return _Source(store.outcomes(), f"imgcaption: {settings.db}")


def _dynamodb_source(
    table_name: str, endpoint_url: str | None, region: str | None, prefix: str | None, presign_s: int | None
) -> _Source:
    from imgcaption.distribution import install_hint
    from imgcaption.errors import ConfigurationError
    from imgcaption_aws.clients import dynamodb_client, s3_presigning_client
    from imgcaption_aws.deps import MissingDependencyError
    from imgcaption_aws.store import DynamoDBStore
    from imgcaption_aws.uris import parse_s3_uri

    if prefix is not None:
        try:
            parse_s3_uri(prefix, allow_empty_key=True)
        except ConfigurationError as exc:
            raise UsageFailure(f"--prefix: {exc.message}") from exc
    try:
        store = DynamoDBStore(dynamodb_client(endpoint_url, region), table_name)
        s3 = s3_presigning_client(endpoint_url, region) if presign_s is not None else None
    except MissingDependencyError as exc:
        cause = exc.__cause__ or exc
        raise UsageFailure(
            f"`export --table` needs the `aws` extra: {install_hint('aws')} ({type(cause).__name__}: {cause})"
        ) from exc
    title = f"imgcaption: DynamoDB table {table_name}" + (f", {prefix}" if prefix else "")
    if s3 is None:
        return _Source(store.outcomes(prefix), title)
    return _presigned(store.outcomes(prefix), title, s3, presign_s or 0)


def _presigned(outcomes: Iterator[Outcome], title: str, s3: Any, expires_s: int) -> _Source:
    """The gallery is built in memory anyway: read the outcomes first so each picture is the version captioned."""
    from imgcaption_aws.source import presigned_get_url

    chosen = list(outcomes)
    refs = {outcome.ref.uri: outcome.ref for outcome in chosen}

    def image_url(source: str) -> str | None:
        ref = refs.get(source)
        return presigned_get_url(s3, ref, expires_s) if ref is not None else None

    return _Source(chosen, title, image_url)
