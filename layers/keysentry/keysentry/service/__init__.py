"""The operations on keys, shared by the CLI, the management API and the schedule.

Each operation reads the key, asks the domain (:mod:`keysentry.model`) for the next record, and
writes it with one conditional transaction. Nothing here is reachable from only one entry point.

- :mod:`.issuing`: issue a key, change its policy, tell which key a token is;
- :mod:`.reading`: keys, audit trails, pepper versions in use;
- :mod:`.chain`: suspend, resume, revoke, report a leak, expire (a key and its chain);
- :mod:`.rotating`: rotation by the owner, the holder or the schedule; collecting a successor;
- :mod:`.schedule`: the scheduled run;
- :mod:`.usage`: a key's usage over a window, by hour or day; an owner's keys by use.
"""

from keysentry.errors import ConflictError, TransitionError
from keysentry.service.base import SIGNING_SECRET_LEN, Clock, system_clock
from keysentry.service.chain import REVOKE_ATTEMPTS
from keysentry.service.issuing import Issuing
from keysentry.service.reading import Reading
from keysentry.service.results import Issued, SealedSuccessor
from keysentry.service.rotating import MAX_HOLDER_CHAIN
from keysentry.service.schedule import Scheduling, Summary
from keysentry.service.usage import Usage


class KeyService(Issuing, Reading, Scheduling, Usage):
    """Every use case on keys, over one store, one pepper source, the settings and a clock."""


__all__ = [
    "MAX_HOLDER_CHAIN",
    "REVOKE_ATTEMPTS",
    "SIGNING_SECRET_LEN",
    "Clock",
    "ConflictError",
    "Issued",
    "KeyService",
    "SealedSuccessor",
    "Summary",
    "TransitionError",
    "system_clock",
]
