"""``python -m devstore serve``: devstore without Django (same flags as ``manage.py devstore serve``)."""

from __future__ import annotations

import argparse
import sys

from django.core.management.base import CommandError

from devstore.management.commands.devstore import add_serve_arguments, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstore", description="Run devstore, the local Shopify stand-in.")
    add_serve_arguments(parser)
    opts = vars(parser.parse_args(argv))
    try:
        serve(opts, lambda line: print(line, flush=True))  # noqa: T201 - a command-line tool
    except CommandError as exc:
        print(f"devstore: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
