"""The API Gateway Lambda authorizer: REST (TOKEN and REQUEST) and HTTP API (payload 2.0).

- :mod:`.events`: the three event shapes, read into one :class:`Request`;
- :mod:`.paths`: canonical request paths;
- :mod:`.decide`: the rules (:class:`Authorizer`) over the key store, nonce table, peppers and clock;
- :mod:`.cache`: records, unknown kids and decisions remembered within a container;
- :mod:`.usage`: last_used_at and the re-hash under a new pepper;
- :mod:`.respond`: policies, context, usage identifier, Deny and 401.

Unknown or malformed keys get 401; known keys that are not allowed get an explicit Deny (403) with
the reason in the log only. Any internal failure fails closed. Imports stay lean (no pydantic,
cryptography or X-Ray here): this package is paid on every cold start.
"""

from __future__ import annotations

from keysentry.authorizer.cache import NEGATIVE_TTL_S, Entry, RecordCache
from keysentry.authorizer.decide import Authorizer, parse_test_stages
from keysentry.authorizer.events import MAX_HEADER_VALUES, Request, read_request
from keysentry.authorizer.management import ManagementApi
from keysentry.authorizer.outcomes import Decision, Outcome, failure
from keysentry.authorizer.paths import NONCANONICAL_GLOBS, path_is_canonical
from keysentry.authorizer.respond import ROUTE_DENIALS, Unauthorized, policy, respond
from keysentry.authorizer.usage import PEPPER_CHECK_S, REHASH_RETRY_S, USAGE_WRITE_INTERVAL_S

__all__ = [
    "MAX_HEADER_VALUES",
    "NEGATIVE_TTL_S",
    "NONCANONICAL_GLOBS",
    "PEPPER_CHECK_S",
    "REHASH_RETRY_S",
    "ROUTE_DENIALS",
    "USAGE_WRITE_INTERVAL_S",
    "Authorizer",
    "Decision",
    "Entry",
    "ManagementApi",
    "Outcome",
    "RecordCache",
    "Request",
    "Unauthorized",
    "failure",
    "parse_test_stages",
    "path_is_canonical",
    "policy",
    "read_request",
    "respond",
]
