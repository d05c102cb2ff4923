"""``keysentry``: the operator's command line, against a deployed stack (``--stack``) or any AWS
endpoint (``AWS_ENDPOINT_URL`` too).

User mistakes end with a one-line error (JSON on stderr with ``--json``) and the exit code of
:data:`keysentry.cli.failures.EXIT_CODES`, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from keysentry.cli.failures import EXIT_AWS, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_USAGE, describe
from keysentry.cli.output import Output
from keysentry.cli.parser import Parser, build_parser, json_requested, parsers
from keysentry.cli.stack import Services
from keysentry.cli.table import can_cut

if TYPE_CHECKING:
    from keysentry.service import Clock, KeyService

__all__ = ["EXIT_AWS", "EXIT_CONFLICT", "EXIT_NOT_FOUND", "EXIT_USAGE", "build_parser", "main"]


def _server_side_installed() -> bool:
    """Whether the command's dependencies are there; a client-only install is told which to add."""
    try:
        import botocore  # noqa: F401
    except ImportError:
        print(
            "error: the keysentry command needs the server side: pip install 'keysentry[server]'",
            file=sys.stderr,
        )
        return False
    return True


def _service(services: Services) -> KeyService:
    """The key service of the deployment the settings name (a test hands in its own here)."""
    return services.key_service()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments; a mistake in them is reported as JSON when the line asks for JSON."""
    parser = build_parser()
    if json_requested(sys.argv[1:] if argv is None else argv):
        for each in parsers(parser):
            if isinstance(each, Parser):
                each.json_errors = True
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, clock: Clock | None = None) -> int:
    """Run one command; ``clock`` (epoch seconds) stands for the time it runs at: what the service
    writes and what the tables' relative times (``in 3 d``, ``2 h ago``) are counted from."""
    if not _server_side_installed():
        return EXIT_USAGE
    args = _parse(argv)
    out = Output(getattr(args, "output", "table") == "json", can_cut(sys.stdout.encoding))
    services = Services(args, clock, lambda given: _service(given))
    try:
        code: int = args.func(args, out, services)
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as a pipe's writer does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:
        failure = describe(error, services.resolved)
        if failure is None:
            raise
        out.error(*failure)
        return failure[1]


if __name__ == "__main__":
    sys.exit(main())
