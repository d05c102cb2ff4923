"""The key a consumer's HTTP client uses, and its hand-over to a successor: any HTTP library.

A backend's ``Keysentry-Rotate`` notice (:mod:`keysentry.client.notice`) about the key in use
starts a collection: ``POST <self_service>/self/successor``, signed with the key in use, answers
the successor (opened with the X25519 ``delivery_key`` when it is sealed). The successor goes to
``on_successor`` for safe storage, and only once that returned does the holder switch to it.

- One collection at a time, whatever the number of threads: one thread claims it, the others go
  on with the key in use (it works until its grace window ends).
- ``on_successor`` failing keeps the successor in memory (a one-time pickup cannot be repeated)
  and the key in use; the call is retried on a request at least ``retry_seconds`` later, with
  the same successor, until it returns. A failed or refused pickup is retried the same way.
- A successor is accepted when the management API names the key in use as its predecessor,
  whatever a notice said (a stale or wrong notice never discards a one-time pickup).
- An unsealed successor is handed out once: other processes sharing the key get 404. They switch
  when ``load_successor`` (the application reads the store the first one wrote) gives the key the
  notice named; without it they keep the key in use until its grace ends. A sealed successor
  (``delivery_key``) can be collected by every process.
- ``self_service`` is an absolute https URL (http only on localhost, for local testing): the
  pickup is signed with the key in use.
- Nothing here logs or raises with a key or secret in it: log lines name key ids only.

The library bindings (:mod:`keysentry.client.requests`, :mod:`keysentry.client.httpx`) send the
requests; this module decides what to send and what the answers mean.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from keysentry.client.notice import Notice, parse_notice
from keysentry.client.prepare import Signer
from keysentry.client.signer import load_signing, open_successor
from keysentry.keyformat import parse

logger = logging.getLogger("keysentry.client")
SUCCESSOR_PATH = "/self/successor"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
Loader = Callable[[], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Successor:
    """A collected successor: give it to safe storage. ``signing_secret`` is set for hmac keys
    (Ed25519 and RSA successors keep the predecessor's key pair). ``grace_ends_at``: Unix time
    after which the predecessor is refused."""

    kid: str
    key: str = field(repr=False)
    signing_secret: str | None = field(repr=False)
    predecessor: str
    grace_ends_at: int


@dataclass(frozen=True)
class Pickup:
    """A collection to send: POST ``url`` with the key in use (``base_path``: the management API's
    stage, not signed)."""

    url: str
    base_path: str
    signer: Signer


class KeyHolder:
    def __init__(
        self,
        key: str,
        *,
        signing: Any = None,
        on_successor: Callable[[Successor], object] | None = None,
        self_service: str | None = None,
        delivery_key: Any = None,
        load_successor: Loader | None = None,
        base_path: str = "",
        retry_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parse(key)  # MalformedKeyError, which never echoes the key
        if (on_successor is None) != (self_service is None):
            raise ValueError("automatic rotation needs both on_successor and self_service (the API's URL)")
        if base_path and (not base_path.startswith("/") or base_path.endswith("/")):
            raise ValueError("base_path starts with '/' and does not end with one, e.g. '/prod'")
        secret, private_key = load_signing(signing)
        self.signer = Signer(key, secret, private_key)
        self.on_successor = on_successor
        self.self_service = _management_url(self_service) if self_service else None
        self.delivery_key = delivery_key
        self.load_successor = load_successor
        self.base_path = base_path
        self.retry_seconds = retry_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._notice: Notice | None = None
        self._pending: Successor | None = None
        self._busy = False
        self._next_try = 0.0
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"KeyHolder(kid={self.kid!r})"

    @property
    def kid(self) -> str:
        return parse(self.signer.key).kid

    def observe(self, header: str | None) -> None:
        """Read a response's ``Keysentry-Rotate`` value; remember a notice about the key in use."""
        notice = parse_notice(header)
        if notice is None:
            return
        with self._lock:
            if notice.key != self.kid or self._notice == notice:
                return
            if self._notice is None or self._notice.successor != notice.successor:
                logger.info("key %s rotates to %s in %d s", notice.key, notice.successor, notice.seconds)
            self._notice = notice
        if self.on_successor is None and notice.successor not in self._warned:
            self._warned.add(notice.successor)
            logger.warning(
                "key %s is rotating (%d s left) and no on_successor is set: collect %s yourself",
                notice.key,
                notice.seconds,
                notice.successor,
            )

    def claim(self) -> Pickup | Successor | None:
        """What this thread should do now, claimed for it alone: a pickup to send, a collected
        successor to store again, or nothing. Pair each claim with :meth:`release`."""
        with self._lock:
            if self._busy or self.on_successor is None or self.clock() < self._next_try:
                return None
            if self._pending is None and self._notice is None:
                return None
            self._busy = True
            if self._pending is not None:
                return self._pending
        if self._reload(quiet=True):  # another process sharing the key collected it already
            self.release()
            return None
        assert self.self_service is not None
        return Pickup(
            self.self_service + SUCCESSOR_PATH, urlsplit(self.self_service).path.rstrip("/"), self.signer
        )

    def collected(self, status: int, body: bytes) -> None:
        """The pickup's answer: open the successor, then store it (and switch)."""
        kid = self.kid
        if status != 200:
            if status == 404 and self._reload():
                return
            self._retry_later()
            logger.warning(
                "collecting the successor of %s failed (HTTP %d)%s",
                kid,
                status,
                _NOT_WAITING if status == 404 else "",
            )
            return
        try:
            successor = self._successor(json.loads(body), kid)
        except Exception as error:  # the message of a decoding error may quote the body
            self._retry_later()
            logger.warning("the successor of %s could not be read (%s)", kid, type(error).__name__)
            return
        with self._lock:
            self._pending = successor
        self.store(successor)

    def _successor(self, doc: dict[str, Any], kid: str) -> Successor:
        if doc.get("predecessor") != kid:
            raise LookupError("not a successor of the key in use")
        if "sealed_successor" in doc:
            if self.delivery_key is None:
                raise LookupError("sealed to a delivery key, and no delivery_key is set")
            opened = open_successor(doc["sealed_successor"], private_key=self.delivery_key)
            if opened.get("kid") != doc.get("kid"):
                raise LookupError("the sealed successor is not the one named")
            doc = {**doc, **opened}
        successor_kid = parse(doc["key"]).kid
        seconds = self._notice.seconds if self._notice is not None else 0
        ends = int(self.clock()) + seconds
        return Successor(successor_kid, doc["key"], doc.get("signing_secret"), kid, ends)

    def _reload(self, *, quiet: bool = False) -> bool:
        """Before a pickup and after its 404: whether ``load_successor`` gave the successor the
        notice named (another process sharing the key collected and stored it), and the holder
        switched to it."""
        notice = self._notice
        if self.load_successor is None or notice is None:
            return False
        try:
            stored = self.load_successor()
            key = None if stored is None else stored["key"]
            loaded = key is not None and parse(key).kid == notice.successor
        except Exception as error:  # the application's store: its message may quote a key
            logger.warning("load_successor failed for %s (%s)", notice.key, type(error).__name__)
            return False
        if not loaded or stored is None:
            if not quiet:
                logger.info("load_successor has no %s yet; still using %s", notice.successor, notice.key)
            return False
        with self._lock:
            secret = stored.get("signing_secret") if self.signer.secret is not None else None
            self.signer = Signer(stored["key"], secret, self.signer.private_key)
            self._pending = self._notice = None
        logger.info("switched from key %s to %s, stored by another process", notice.key, notice.successor)
        return True

    def store(self, successor: Successor) -> None:
        """Hand ``successor`` to ``on_successor``; switch to it once that returned."""
        assert self.on_successor is not None
        try:
            self.on_successor(successor)
        except Exception as error:  # the caller's storage failed: keep the successor, try again later
            self._retry_later()
            logger.warning(
                "on_successor failed for %s (%s); still using %s, trying again in %g s",
                successor.kid,
                type(error).__name__,
                successor.predecessor,
                self.retry_seconds,
            )
            return
        with self._lock:
            secret = successor.signing_secret if self.signer.secret is not None else None
            self.signer = Signer(successor.key, secret, self.signer.private_key)
            self._pending = self._notice = None
        logger.info("switched from key %s to its successor %s", successor.predecessor, successor.kid)

    def failed(self, error: BaseException) -> None:
        """The pickup could not be sent (network): try again later."""
        self._retry_later()
        logger.warning("collecting the successor failed (%s)", type(error).__name__)

    def release(self) -> None:
        with self._lock:
            self._busy = False

    def _retry_later(self) -> None:
        with self._lock:
            self._next_try = self.clock() + self.retry_seconds


_NOT_WAITING = (
    ": none is waiting for this key (an owner's rotation, shown to the owner only, or an unsealed "
    "successor another process sharing the key already collected: see load_successor)"
)


def _management_url(url: str) -> str:
    """``self_service`` checked: an absolute https URL (http only on localhost), no query."""
    parts = urlsplit(url)
    local = parts.scheme == "http" and parts.hostname in LOCAL_HOSTS
    if not (parts.scheme == "https" or local) or not parts.hostname:
        raise ValueError(
            "self_service must be the management API's absolute https URL, e.g. "
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod (http only on localhost): "
            "the pickup carries the key"
        )
    if parts.query or parts.fragment:
        raise ValueError("self_service is the management API's URL with its stage, without a query")
    return url.rstrip("/")
