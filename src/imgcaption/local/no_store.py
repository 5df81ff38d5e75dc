"""A store that keeps nothing: for runs that should leave no trace (``imgcaption caption --no-store``).

The outcomes still reach the caller (stdout, ``--output``, sidecars); only the database is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from imgcaption.ports import CaptionSignature, ImageRef, Outcome


class NoStore:
    """A :class:`~imgcaption.ports.CaptionStore` that records nothing and has seen nothing."""

    path = None

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Nothing to write."""

    def has_caption(self, ref: ImageRef, signature: CaptionSignature) -> bool:
        return False

    def outcomes(self) -> Iterable[Outcome]:
        return ()

    def close(self) -> None:
        """Nothing to close."""
