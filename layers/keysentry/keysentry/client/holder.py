"""The key a consumer's HTTP client uses, and its hand-over to a successor: any HTTP library.

A backend's ``Keysentry-Rotate`` notice (:mod:`keysentry.client.notice`) about the key in use
starts a collection: ``POST <self_service>/self/successor``, signed with the key in use, answers
the successor (opened with the X25519 ``delivery_key`` when it is sealed). The successor goes to
``on_successor`` for safe storage, and only once that returned does the holder switch to it.

- One collection at a time, whatever the number of threads: one thread claims it
  (:meth:`KeyHolder.work`), the others go on with the key in use (it works until its grace window
  ends). The claimed work is one flow (:mod:`keysentry.client.pickup` runs it): the pickup to
  send and the application's callbacks to call, each step's outcome fed back to it.
- Anything that goes wrong in a pickup (building, signing, sending, reading it) is a failed
  pickup: the key in use stays, and the pickup is tried again at least ``retry_seconds`` later.
  After a 404 (nothing waiting for this key) the wait doubles each time, up to an hour.
- ``on_successor`` failing keeps the successor in memory (a one-time pickup cannot be repeated)
  and the key in use; the call is retried the same way, with the same successor, until it returns.
- A successor is accepted when the management API names the key in use as its predecessor,
  whatever a notice said (a stale or wrong notice never discards a one-time pickup). A notice is
  dropped once the grace it announced is over (``in`` seconds after it was seen, and a margin).
- An unsealed successor is handed out once: other processes sharing the key get 404. They switch
  when ``load_successor`` (the application reads the store the first one wrote) gives the key the
  notice named; without it they keep the key in use until its grace ends. A sealed successor
  (``delivery_key``) can be collected by every process.
- A key that signs with hmac never switches to a successor without its signing secret (it would
  go out unsigned and be refused).
- ``self_service`` is an absolute https URL (http only on localhost, for local testing) that can
  be signed as it is: the pickup carries the key.
- Nothing here logs or raises with a key or secret in it: log lines name key ids and error types.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from keysentry.client.notice import Notice, parse_notice
from keysentry.client.prepare import Signer, UnsignableRequestError, canonical_url
from keysentry.client.signer import load_signing, open_successor
from keysentry.keyformat import parse
from keysentry.signing import MAX_SIGNED_HEADERS, SignatureError, signed_header_names

logger = logging.getLogger("keysentry.client")
SUCCESSOR_PATH: Final = "/self/successor"
LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
NOTICE_MARGIN: Final = 60.0  # seconds a notice outlives the grace it announced (latency, clocks)
MAX_BACKOFF: Final = 3600.0
Loader = Callable[[], Mapping[str, Any] | None]


class PickupError(Exception):
    """A pickup or callback refused by the client itself; its message is safe to log."""


@dataclass(frozen=True)
class Successor:
    """A collected successor: give it to safe storage. ``signing_secret`` is set for hmac keys
    (Ed25519 and RSA successors keep the predecessor's key pair). ``grace_ends_at``: Unix time
    after which the predecessor is refused, as the management API's answer gives it (from a
    management API that does not, estimated from the notice: its ``in`` seconds counted from when
    the client saw it)."""

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


@dataclass(frozen=True)
class Callback:
    """A step of the flow: call the application's ``name`` callback with ``args``."""

    name: str
    function: Callable[..., object]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What a step gave: the callback's value or the pickup's (status, body), or the error."""

    value: Any = None
    error: BaseException | None = None


Step = Pickup | Callback
Flow = Generator[Step, Outcome, None]


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
        signed_headers: Iterable[str] = (),
    ) -> None:
        parse(key)  # MalformedKeyError, which never echoes the key
        if (on_successor is None) != (self_service is None):
            raise ValueError("automatic rotation needs both on_successor and self_service (the API's URL)")
        if base_path and (not base_path.startswith("/") or base_path.endswith("/")):
            raise ValueError("base_path starts with '/' and does not end with one, e.g. '/prod'")
        secret, private_key = load_signing(signing)
        listed = tuple(sorted({name.strip().lower() for name in signed_headers}))
        if listed:
            try:
                signed_header_names(";".join(listed))
            except SignatureError:
                raise ValueError(
                    f"signed_headers: at most {MAX_SIGNED_HEADERS} header names, none of X-Api-Key, "
                    "Content-Type (signed already) or X-Ks-*"
                ) from None
            if secret is None and private_key is None:
                raise ValueError("signed_headers needs a key that signs (signing=...)")
        self.signer = Signer(key, secret, private_key, listed)
        self.on_successor = on_successor
        self.self_service = _management_url(self_service) if self_service else None
        self.delivery_key = delivery_key
        self.load_successor = load_successor
        self.base_path = base_path
        self.retry_seconds = retry_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._notice: Notice | None = None
        self._seen_at = 0.0
        self._pending: Successor | None = None
        self._busy = False
        self._next_try = 0.0
        self._misses = 0  # 404s in a row for the notice's successor
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
                if self._notice is not None:
                    self._misses = 0
            self._notice, self._seen_at = notice, self.clock()
        if self.on_successor is None and notice.successor not in self._warned:
            self._warned.add(notice.successor)
            logger.warning(
                "key %s is rotating (%d s left) and no on_successor is set: collect %s yourself",
                notice.key,
                notice.seconds,
                notice.successor,
            )

    def work(self) -> Flow | None:
        """The collection this thread should run now, claimed for it alone, or None (most of the
        time). Run it to its end or close it: it releases the claim either way."""
        with self._lock:
            if self._busy or self.on_successor is None or self.clock() < self._next_try:
                return None
            self._drop_ended_notice()
            if self._pending is None and self._notice is None:
                return None
            self._busy = True
            pending = self._pending
        return self._flow(pending)

    def _flow(self, pending: Successor | None) -> Flow:
        try:
            if pending is not None:
                yield from self._store(pending)
            elif not (yield from self._reload(quiet=True)):  # another process collected it already
                assert self.self_service is not None
                base_path = urlsplit(self.self_service).path
                answer = yield Pickup(self.self_service + SUCCESSOR_PATH, base_path, self.signer)
                if answer.error is not None:
                    self._retry_later()
                    logger.warning("collecting the successor failed (%s)", _reason(answer.error))
                else:
                    yield from self._collected(*answer.value)
        finally:
            with self._lock:
                self._busy = False

    def _drop_ended_notice(self) -> None:
        notice = self._notice
        if notice is not None and self.clock() > self._seen_at + notice.seconds + NOTICE_MARGIN:
            logger.warning(
                "the grace of key %s has ended: no more pickups of %s", notice.key, notice.successor
            )
            self._notice = None

    def _collected(self, status: int, body: bytes) -> Flow:
        """The pickup's answer: open the successor, then store it (and switch)."""
        kid = self.kid
        if status != 200:
            if status == 404 and (yield from self._reload()):
                return
            self._retry_later(missed=status == 404)
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
        yield from self._store(successor)

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
        ends = doc.get("predecessor_grace_until")  # the management API's answer says it
        if not isinstance(ends, int) or isinstance(ends, bool):  # an older one: the notice's estimate
            notice = self._notice
            ends = self._seen_at + notice.seconds if notice is not None else self.clock()
        return Successor(successor_kid, doc["key"], doc.get("signing_secret"), kid, int(ends))

    def _reload(self, *, quiet: bool = False) -> Generator[Step, Outcome, bool]:
        """Before a pickup and after its 404: whether ``load_successor`` gave the successor the
        notice named (another process sharing the key collected and stored it), and the holder
        switched to it."""
        notice = self._notice
        if self.load_successor is None or notice is None:
            return False
        got = yield Callback("load_successor", self.load_successor)
        try:
            if got.error is not None:
                raise got.error
            stored = got.value
            loaded = stored is not None and parse(stored["key"]).kid == notice.successor
        except Exception as error:  # the application's store: its message may quote a key
            logger.warning("load_successor failed for %s (%s)", notice.key, _reason(error))
            return False
        if not loaded:
            if not quiet:
                logger.info("load_successor has no %s yet; still using %s", notice.successor, notice.key)
            return False
        secret = stored.get("signing_secret")
        if not self._switch(stored["key"], secret, notice.successor):
            return False
        logger.info("switched from key %s to %s, stored by another process", notice.key, notice.successor)
        return True

    def _store(self, successor: Successor) -> Flow:
        """Hand ``successor`` to ``on_successor``; switch to it once that returned."""
        assert self.on_successor is not None
        if self.signer.secret is not None and not successor.signing_secret:
            self._switch(successor.key, None, successor.kid)  # refused, and logged
            with self._lock:
                self._pending = None
            self._retry_later()
            return
        got = yield Callback("on_successor", self.on_successor, (successor,))
        if got.error is not None:  # the caller's storage failed: keep the successor, try again later
            self._retry_later()
            logger.warning(
                "on_successor failed for %s (%s); still using %s, trying again in %g s",
                successor.kid,
                _reason(got.error),
                successor.predecessor,
                self.retry_seconds,
            )
            return
        if self._switch(successor.key, successor.signing_secret, successor.kid):
            logger.info("switched from key %s to its successor %s", successor.predecessor, successor.kid)

    def _switch(self, key: str, secret: object, kid: str) -> bool:
        """Use ``key`` from now on, unless the key in use signs with hmac and ``secret`` is none."""
        with self._lock:
            if self.signer.secret is not None and not (isinstance(secret, str) and secret.strip()):
                logger.error(
                    "successor %s has no signing_secret and key %s signs with hmac: still using %s",
                    kid,
                    self.kid,
                    self.kid,
                )
                return False
            hmac_secret = secret if self.signer.secret is not None and isinstance(secret, str) else None
            self.signer = Signer(key, hmac_secret, self.signer.private_key, self.signer.signed_headers)
            self._pending = self._notice = None
            self._misses = 0
        return True

    def _retry_later(self, *, missed: bool = False) -> None:
        with self._lock:
            self._misses = self._misses + 1 if missed else 0
            wait = self.retry_seconds * 2 ** max(self._misses - 1, 0)
            self._next_try = self.clock() + min(wait, max(MAX_BACKOFF, self.retry_seconds))


def _reason(error: BaseException) -> str:
    """How a log line names an error: its type, and its message when the client raised it (never
    an application's or a library's message, which may quote a key or a body)."""
    if isinstance(error, PickupError | UnsignableRequestError):
        return f"{type(error).__name__}: {error}"
    return type(error).__name__


_NOT_WAITING = (
    ": none is waiting for this key (an owner's rotation, shown to the owner only, or an unsealed "
    "successor another process sharing the key already collected: see load_successor)"
)


def _management_url(url: str) -> str:
    """``self_service`` checked: an absolute https URL (http only on localhost), no query, whose
    pickup URL can be signed as it is; returned in the spelling that is sent."""
    parts = urlsplit(url)
    local = parts.scheme == "http" and parts.hostname in LOCAL_HOSTS
    if not (parts.scheme == "https" or local) or not parts.hostname:
        raise ValueError(
            "self_service must be the management API's absolute https URL, e.g. "
            "https://abc123.execute-api.eu-west-1.amazonaws.com/prod (http only on localhost): "
            "the pickup carries the key"
        )
    if parts.query or parts.fragment or parts.username is not None:
        raise ValueError("self_service is the management API's URL with its stage, without a query or user")
    try:
        sent, _, _ = canonical_url(url.rstrip("/") + SUCCESSOR_PATH, "")
    except UnsignableRequestError as error:
        raise ValueError(f"self_service cannot be signed as it is: {error}") from None
    return sent[: -len(SUCCESSOR_PATH)]
