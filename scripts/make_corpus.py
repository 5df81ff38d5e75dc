"""Write the hostile-input corpus to a directory: ``python scripts/make_corpus.py /tmp/corpus``."""

from __future__ import annotations

import sys

from imgcaption.testing.corpus import write_corpus, write_symlink_loop


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    entries = write_corpus(target)
    write_symlink_loop(f"{target}/walk")
    for entry in entries:
        print(f"{entry.expect:<24} {entry.name:<28} {entry.why}")
    print(f"{len(entries)} files in {target}")


if __name__ == "__main__":
    main()
