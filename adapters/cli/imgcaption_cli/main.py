"""The ``imgcaption`` command group. Every subcommand is imported on first use, so ``imgcaption --help`` loads click
and nothing else (no torch, no transformers, no boto3), and a command whose optional extra is not installed still
shows up in the list and explains how to install it when run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from imgcaption.distribution import DISTRIBUTION, install_hint

EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """Where a subcommand lives, its one-line help for ``imgcaption --help``, and the extra it needs."""

    target: str
    """``"module:attribute"``"""
    short_help: str
    extra: str | None = None


COMMANDS: dict[str, LazyCommand] = {
    "caption": LazyCommand("imgcaption_cli.caption_command:caption", "Caption images, directories and globs."),
    "export": LazyCommand(
        "imgcaption_cli.export_command:export", "Dump captions (SQLite or DynamoDB) as JSONL, CSV, HTML."
    ),
    "demo": LazyCommand("imgcaption_cli.demo_command:demo", "Caption the bundled examples and write a gallery."),
    "backfill": LazyCommand(
        "imgcaption_cli.backfill_command:backfill", "Queue existing S3 objects for captioning.", extra="aws"
    ),
    "worker": LazyCommand("imgcaption_cli.aws_commands:worker", "Caption S3 objects from an SQS queue.", extra="aws"),
    "bench": LazyCommand("imgcaption_cli.bench_commands:bench", "Benchmark precision modes and batch sizes."),
    "bench-family": LazyCommand(
        "imgcaption_cli.bench_commands:bench_family", "Benchmark a model family's modes against its own generate."
    ),
    "optimize": LazyCommand("imgcaption_cli.bench_commands:optimize", "Save a model prepared for a fast mode."),
}


def _unavailable(name: str, spec: LazyCommand, error: ImportError) -> click.Command:
    """A stand-in that explains why the real command cannot run (exit 2), instead of a traceback."""
    module = spec.target.partition(":")[0]
    missing = getattr(error, "name", None)
    if isinstance(error, ModuleNotFoundError) and missing is not None and module.startswith(missing):
        reason = f"the `{name}` command is not part of this installation of imgcaption."
    elif spec.extra:
        reason = (
            f"the `{name}` command needs the `{spec.extra}` extra: {install_hint(spec.extra)} "
            f"({type(error).__name__}: {error})"
        )
    else:
        reason = f"the `{name}` command cannot be loaded: {type(error).__name__}: {error}"

    def fail(**_: Any) -> NoReturn:
        click.echo(f"Error: {reason}", err=True)
        raise SystemExit(EXIT_USAGE)

    return click.Command(
        name,
        callback=fail,
        help=f"Unavailable: {reason}",
        short_help=spec.short_help,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    )


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand is used."""

    def __init__(self, *args: Any, lazy_commands: dict[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        loaded = super().get_command(ctx, cmd_name)
        if loaded is not None or cmd_name not in self.lazy_commands:
            return loaded
        spec = self.lazy_commands[cmd_name]
        module_name, _, attribute = spec.target.partition(":")
        try:
            command = getattr(importlib.import_module(module_name), attribute)
        except ImportError as exc:
            return _unavailable(cmd_name, spec, exc)
        except AttributeError as exc:
            return _unavailable(cmd_name, spec, ImportError(str(exc)))
        if not isinstance(command, click.Command):
            return _unavailable(cmd_name, spec, ImportError(f"{spec.target} is not a click command"))
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands from their static one-line help: listing must not import them (that is the point)."""
        rows = []
        for name in self.list_commands(ctx):
            spec = self.lazy_commands.get(name)
            if spec is not None and name not in self.commands:
                rows.append((name, spec.short_help))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(package_name=DISTRIBUTION)
def cli() -> None:
    """Caption images with a local model: folders, globs, S3 buckets.

    \b
      imgcaption caption ~/Pictures --recursive --format jsonl
      imgcaption export --format html --output gallery.html
      imgcaption demo

    Captions are recorded in a SQLite database (default: captions.db in the user data directory, e.g.
    ~/.local/share/imgcaption; --db or IMGCAPTION_DB to change it, --no-store for none). Every setting can also
    come from an IMGCAPTION_* environment variable, or a .env file named by IMGCAPTION_ENV_FILE.
    """
