"""``keysentry``: the operator's command line, against any AWS endpoint (``AWS_ENDPOINT_URL`` too).

User mistakes end with a one-line error and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from keysentry.cli.commands import EXIT_AWS, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_USAGE
from keysentry.cli.output import Output
from keysentry.cli.parser import build_parser as _build_parser
from keysentry.cli.table import can_cut
from keysentry.errors import ConflictError, KeyNotFoundError, KeysentryError, TransitionError

if TYPE_CHECKING:
    from keysentry.service import Clock, KeyService

__all__ = ["EXIT_AWS", "EXIT_CONFLICT", "EXIT_NOT_FOUND", "EXIT_USAGE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    return _build_parser(__doc__)


def _service(clock: Clock | None) -> KeyService:
    from keysentry.service import KeyService

    if clock is None:
        return KeyService.from_settings()
    return KeyService.from_settings(clock=clock)


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


def main(argv: Sequence[str] | None = None, clock: Clock | None = None) -> int:
    """Run one command; ``clock`` (epoch seconds) stands for the time it runs at: what the service
    writes and what the tables' relative times (``in 3 d``, ``2 h ago``) are counted from."""
    if not _server_side_installed():
        return EXIT_USAGE
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    args = build_parser().parse_args(argv)
    out = Output(getattr(args, "output", "table") == "json", can_cut(sys.stdout.encoding))
    try:
        code: int = args.func(args, out, lambda: _service(clock))
        sys.stdout.flush()  # a reader that went away shows here, not at exit
        return code
    except KeyNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (TransitionError, ConflictError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFLICT
    except KeysentryError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except EndpointConnectionError as error:
        print(f"error: cannot reach the AWS endpoint ({error.kwargs.get('endpoint_url')})", file=sys.stderr)
        return EXIT_AWS
    except NoCredentialsError:
        print("error: no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)", file=sys.stderr)
        return EXIT_AWS
    except NoRegionError:
        print("error: no AWS region set (set AWS_REGION or AWS_DEFAULT_REGION)", file=sys.stderr)
        return EXIT_AWS
    except ClientError as error:
        err = error.response.get("Error", {})
        print(f"error: AWS said {err.get('Code')}: {err.get('Message')}", file=sys.stderr)
        return EXIT_AWS
    except BotoCoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_AWS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as a pipe's writer does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:  # a file named on the command line (a PEM, a template) cannot be read
        print(f"error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:
        if str(error).startswith("Invalid endpoint"):  # botocore's check of AWS_ENDPOINT_URL
            print(f"error: {error} (check AWS_ENDPOINT_URL)", file=sys.stderr)
            return EXIT_AWS
        raise


if __name__ == "__main__":
    sys.exit(main())
