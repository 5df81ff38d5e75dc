"""Running the pipeline for a person at a terminal, shared by ``caption`` and ``demo``.

What goes where: results on stdout (or ``--output``); a progress bar, one line per failure (file and reason) and
a summary on stderr. The progress bar appears only when stderr is a terminal, so piped and logged runs stay clean.
Ctrl-C (or SIGTERM) stops after the batch in flight; everything captioned so far is already in the store.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from imgcaption.errors import StoreError
from imgcaption.local.sidecars import SidecarResult, SidecarStatus
from imgcaption.local.writers import OutcomeWriter, display_path
from imgcaption.pipeline import Pipeline, PipelineSummary
from imgcaption.ports import ImageRef, ImageSource, Outcome, Skipped
from imgcaption.results import Caption, CaptionFailure
from imgcaption_cli.graceful_stop import GracefulStop
from imgcaption_cli.options import EXIT_INTERRUPTED, EXIT_OK, EXIT_SOME_FAILED

if TYPE_CHECKING:
    from imgcaption.captioner import Captioner
    from imgcaption.ports import CaptionStore

EXIT_BROKEN_PIPE = 141


class Terminal:
    """stderr for people (rich, colour only on a terminal), stdout for results."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self.err = Console(stderr=True, soft_wrap=True, highlight=False)
        self.quiet = quiet
        self.verbose = verbose

    @property
    def interactive(self) -> bool:
        """A progress bar and spinners make sense: stderr is a terminal and nobody asked for quiet."""
        return self.err.is_terminal and not self.quiet

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error[/]: {escape(message)}")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning[/]: {escape(message)}")

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(escape(message))

    def detail(self, message: str) -> None:
        if self.verbose and not self.quiet:
            self.err.print(f"[dim]{escape(message)}[/]")

    def loud(self, message: str) -> None:
        """A warning nobody should miss (shown even with --quiet)."""
        self.err.rule("[bold red]WARNING[/]")
        self.err.print(f"[bold red]{escape(message)}[/]")
        self.err.rule()

    @contextlib.contextmanager
    def status(self, message: str, *, log: bool = True) -> Iterator[None]:
        """A spinner on a terminal; elsewhere the message once (if ``log``), so a log shows what a long pause was."""
        if self.interactive:
            with self.err.status(escape(message)):
                yield
        else:
            if log:
                self.info(message)
            yield

    def stdout(self) -> TextIO:
        """Where results go: stdout, routed through the console while a progress bar shares the terminal."""
        if self.interactive and sys.stdout.isatty():
            return _ConsoleLines(self.err)  # type: ignore[return-value]
        return sys.stdout


class _ConsoleLines:
    """A minimal text stream that prints complete lines through a rich console, above its live progress bar."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.console.out(line, highlight=False)
        return len(text)

    def flush(self) -> None:
        if self._partial:
            self.console.out(self._partial, highlight=False)
            self._partial = ""


def first_inputs(source: ImageSource, terminal: Terminal, limit: int = 2) -> list[ImageRef]:
    """Up to ``limit`` inputs, listing no further: is there anything to caption (an empty run loads no model), and
    is it one named file (printed bare)? The pipeline lists everything as it captions."""
    with terminal.status("Finding images…", log=False):
        refs = (item for item in source.iter_refs() if isinstance(item, ImageRef))
        return list(itertools.islice(refs, limit))


class CaptionFileWriter(Protocol):
    """Writes a caption to a file of its image (text sidecar, XMP sidecar, the image's own metadata)."""

    def write(self, caption: Caption) -> SidecarResult: ...


@dataclass
class FileOutput:
    """One kind of file written for each caption, the words the terminal uses for it, and how each write went."""

    writer: CaptionFileWriter
    name: str = "sidecar"
    plural: str = "sidecars"
    kept_note: str = "--overwrite replaces them"
    counts: collections.Counter[SidecarStatus] = field(default_factory=collections.Counter)


@dataclass
class RunResult:
    summary: PipelineSummary
    outcomes: list[Outcome] = field(default_factory=list)
    files: Sequence[FileOutput] = ()
    interrupted: bool = False
    broken_pipe: bool = False

    @property
    def already_captioned(self) -> int:
        return self.summary.skipped_existing

    @property
    def not_images(self) -> list[Skipped]:
        return self.summary.not_images

    @property
    def exit_code(self) -> int:
        if self.broken_pipe:
            return EXIT_BROKEN_PIPE
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.summary.failed or any(output.counts[SidecarStatus.ERROR] for output in self.files):
            return EXIT_SOME_FAILED
        return EXIT_OK


def run_captioning(
    source: ImageSource,
    store: CaptionStore,
    captioner: Captioner,
    terminal: Terminal,
    *,
    batch_size: int,
    skip_existing: bool = False,
    writer: OutcomeWriter | None = None,
    files: Sequence[FileOutput] = (),
    collect: bool = False,
    annotate: Callable[[Outcome], str | None] | None = None,
) -> RunResult:
    """Caption what ``source`` lists into ``store``, reporting as it goes; never raises for a bad image.

    Each successful caption is also written by each of ``files``, in order; a failure writes no file.
    """
    result = RunResult(PipelineSummary(), files=files)
    stop = GracefulStop()
    announced = False
    failed = 0
    listed = 0

    progress = _progress(terminal) if terminal.interactive else None
    task = progress.add_task("Captioning", total=None) if progress else None

    def on_listed(_: ImageRef) -> None:
        nonlocal listed
        listed += 1
        if progress is not None and task is not None:  # the total grows as the pipeline lists
            progress.update(task, total=listed)

    def on_skipped(item: Skipped) -> None:
        terminal.detail(f"skipped {display_path(item.uri)}: {item.reason}")

    def should_stop() -> bool:
        nonlocal announced
        if stop.event.is_set() and not announced:
            announced = True
            if stop.reason != "broken pipe":
                terminal.warn(f"{stop.reason}: stopping after the current batch (press Ctrl-C again to abort)")
        return stop.event.is_set()

    def on_outcome(outcome: Outcome) -> None:
        nonlocal writer, failed
        outcome_result = outcome.result
        if collect:
            result.outcomes.append(outcome)
        if isinstance(outcome_result, CaptionFailure):
            failed += 1
            terminal.error(
                f"{display_path(outcome_result.source)}: {outcome_result.error_type}: {outcome_result.message}"
            )
        if writer is not None:
            try:
                writer.write(outcome)
            except BrokenPipeError:
                writer = None
                result.broken_pipe = True
                silence_stdout()
                stop.request("broken pipe")
        if isinstance(outcome_result, Caption):
            for output in files:
                _write_file(output, outcome_result, terminal)
        note = annotate(outcome) if annotate else None
        if note:
            terminal.info(note)
        if progress is not None and task is not None:
            progress.update(task, advance=1, description=f"Captioning ({failed} failed)" if failed else "Captioning")

    pipeline = Pipeline(
        source,
        store,
        captioner,
        batch_size=batch_size,
        skip_existing=skip_existing,
        on_outcome=on_outcome,
        on_skipped=on_skipped,
        on_listed=on_listed,
        should_stop=should_stop,
    )
    try:
        with stop.on_signals(), progress or contextlib.nullcontext():
            summary = pipeline.run()
    except KeyboardInterrupt:
        terminal.error("aborted; every batch finished before the interrupt is recorded")
        raise SystemExit(EXIT_INTERRUPTED) from None
    except StoreError as exc:
        terminal.error(f"recording failed, stopping: {exc}")
        raise SystemExit(EXIT_SOME_FAILED) from None
    result.summary = summary
    result.interrupted = bool(summary.unprocessed) and not result.broken_pipe
    if writer is not None:
        with contextlib.suppress(BrokenPipeError):
            writer.close()
    return result


def _write_file(output: FileOutput, caption: Caption, terminal: Terminal) -> None:
    written = output.writer.write(caption)
    output.counts[written.status] += 1
    where = display_path(str(written.path)) if written.path else display_path(caption.source)
    if written.status is SidecarStatus.ERROR:
        terminal.error(f"cannot write {output.name} {where}: {written.detail}")
    elif written.status is SidecarStatus.CONFLICT:
        terminal.warn(f"not writing {output.name} {where}: {written.detail}")
    elif written.status is SidecarStatus.KEPT_EXISTING:
        terminal.detail(f"kept existing {output.name} {where}" + (f": {written.detail}" if written.detail else ""))


def _progress(terminal: Terminal) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=terminal.err,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def silence_stdout() -> None:
    """After the reader of our stdout went away, send the rest nowhere (as the Python docs recommend)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())


def print_summary(result: RunResult, terminal: Terminal, *, store_path: str) -> None:
    """One line a person can read at the end of a run (stderr), plus what to do next when something was left."""
    summary = result.summary
    parts = [f"{summary.captioned} captioned", f"{summary.failed} failed"]
    if result.already_captioned:
        parts.append(f"{result.already_captioned} already captioned")
    if result.not_images:
        parts.append(f"{len(result.not_images)} skipped (not images{'' if terminal.verbose else '; -v lists them'})")
    rate = f" ({summary.images_per_s:.1f} images/s)" if summary.processed else ""
    terminal.info(f"{', '.join(parts)} in {summary.elapsed_s:.1f} s{rate}. Store: {store_path}")
    for output in result.files:
        counts = output.counts
        line = f"{output.plural}: {counts[SidecarStatus.WRITTEN]} written"
        if counts[SidecarStatus.KEPT_EXISTING]:
            line += f", {counts[SidecarStatus.KEPT_EXISTING]} existing kept ({output.kept_note})"
        if counts[SidecarStatus.CONFLICT] or counts[SidecarStatus.ERROR]:
            line += f", {counts[SidecarStatus.CONFLICT] + counts[SidecarStatus.ERROR]} not written"
        terminal.info(line)
    if result.interrupted:
        terminal.warn(
            f"stopped early: {len(summary.unprocessed)} images not captioned; "
            "run the same command with --skip-existing to finish"
        )
