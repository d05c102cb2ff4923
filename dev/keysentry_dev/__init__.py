"""keysentry's development tools: the local cloud on moto (``keysentry local up``) and the demo.

Installed beside ``keysentry`` by pyproject, never built into the Lambda layer: they need moto and
PyYAML (the ``local`` extra), which no function uses.
"""

from __future__ import annotations

from importlib.util import find_spec

from keysentry.errors import ConfigurationError


def require_local_extra(command: str) -> None:
    """A one-line error, not a traceback, when moto or PyYAML is not installed."""
    missing = [name for name in ("moto", "yaml") if find_spec(name) is None]
    if missing:
        raise ConfigurationError(
            f"{command} needs {' and '.join(missing)}: pip install 'keysentry[local]' (make install does)"
        )
