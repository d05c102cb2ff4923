"""DynamoDB adapter for the usage table: per-key counters by hour and by day.

Items (``pk``, ``sk``):
- ``k#<kid>`` or ``a#<api>`` (lines without a key) with ``h#YYYY-MM-DDTHH`` (an hour, UTC; expires
  after :data:`HOUR_TTL_S`) or ``d#YYYY-MM-DD`` (a day; :data:`DAY_TTL_S`). Counters are top-level
  numbers: ``requests``, ``bytes``, ``latency_ms``, and one attribute per name of each counted set,
  ``s:2xx`` (status class), ``r:GET /v1/x`` (route), ``n:203.0.113.0/24`` (source network),
  ``x:ip_not_allowed`` (refusal reason). DynamoDB's ADD creates a missing number at zero, so a
  batch's counts go in with one UpdateItem per item, whatever it held before. A day of the first
  key of a rotation chain also holds ``chained``: the requests of the chain's later keys that day,
  which a quota counts with the first key's own (:attr:`keysentry.usage.KeyHour.chained`).
- ``k#<kid>`` with ``profile``: what the usage watcher knows of the key's past (``first_seen``, the
  hour it was first seen; ``networks``, a string set of the source networks it was used from, at
  most :data:`keysentry.watch.MAX_NETWORKS`); expires :data:`PROFILE_TTL_S` after its last change.
- ``b#<batch id>`` with ``c#<chunk>``: the marker that a chunk of a batch was counted, written in the
  same transaction as its updates, so a redelivered batch counts once.

Each item holds at most :data:`STORED` distinct names of a set; past that, new names count under
``other`` (a key used from thousands of networks cannot grow its item to DynamoDB's 400 KB limit).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError
from keysentry import aws
from keysentry.usage import DAY, HOUR, OTHER, KeyHour
from keysentry.watch import MAX_NETWORKS, Profile

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

HOUR_TTL_S: Final = 35 * DAY
DAY_TTL_S: Final = 400 * DAY
PROFILE_TTL_S: Final = 400 * DAY
PROFILE_SK: Final = "profile"
MARKER_TTL_S: Final = 7 * DAY  # past Lambda's retries of an asynchronous event (at most 6 hours)
CHUNK: Final = 99  # updates per transaction: DynamoDB's 100 actions, with the chunk's marker
ATTEMPTS: Final = 4
# prefix of each counted set's attributes -> the KeyHour counter, and how many names an item keeps
SETS: Final = {"s:": "by_status", "r:": "by_route", "n:": "networks", "x:": "refusals"}
STORED: Final = {"s:": 8, "r:": 100, "n:": 200, "x:": 50}
TOTALS: Final = ("requests", "bytes", "latency_ms", "chained")

Item = dict[str, Any]
ItemKey = tuple[str, str]  # (pk, sk)


def key_pk(kid: str) -> str:
    return f"k#{kid}"


def api_pk(api: str) -> str:
    return f"a#{api}"


def hour_sk(start: int) -> str:
    return "h#" + dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H")


def day_sk(start: int) -> str:
    return "d#" + dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%d")


def profile_key(kid: str) -> ItemKey:
    return (key_pk(kid), PROFILE_SK)


def read_profile(item: Item | None) -> Profile:
    """A profile item (or none) as the watcher reads it."""
    if not item:
        return Profile()
    first_seen = item.get("first_seen", {}).get("N")
    return Profile(
        int(first_seen) if first_seen is not None else None,
        frozenset(item.get("networks", {}).get("SS", [])),
    )


def start_of(sk: str) -> int:
    """The epoch second an item's period starts at, from its sort key."""
    kind, text = sk[:2], sk[2:]
    form = "%Y-%m-%dT%H" if kind == "h#" else "%Y-%m-%d"
    return int(dt.datetime.strptime(text, form).replace(tzinfo=dt.UTC).timestamp())


def decode(item: Item) -> KeyHour:
    """An item's counters (a period of any length: an hour, a day)."""
    counts = KeyHour()
    for attr, value in item.items():
        if "N" not in value:
            continue
        number = int(value["N"])
        if attr in TOTALS:
            setattr(counts, attr, number)
        elif attr[:2] in SETS:
            getattr(counts, SETS[attr[:2]])[attr[2:]] = number
    return counts


@dataclass(frozen=True)
class Update:
    """One item's share of a batch: the counts to add, and when the item expires."""

    pk: str
    sk: str
    counts: KeyHour
    expires_at: int

    def operation(self, table: str, held: Item | None) -> dict[str, Any]:
        """The UpdateItem: ADD each count; a name the item cannot take any more counts as other."""
        adds: dict[str, int] = {name: getattr(self.counts, name) for name in TOTALS}
        for prefix, counter in SETS.items():
            known = {a for a in (held or {}) if a.startswith(prefix)}
            room = STORED[prefix] - len(known)
            for name, count in sorted(getattr(self.counts, counter).items()):
                attr = prefix + name
                if attr not in known and name != OTHER:
                    if room <= 1:  # the last place is kept for "other"
                        attr = prefix + OTHER
                    else:
                        known.add(attr)
                        room -= 1
                adds[attr] = adds.get(attr, 0) + count
        names = {"#ttl": "ttl"}
        values = {":ttl": {"N": str(self.expires_at)}}
        clauses = []
        for i, (attr, count) in enumerate(sorted(adds.items())):
            if count:
                names[f"#a{i}"], values[f":a{i}"] = attr, {"N": str(count)}
                clauses.append(f"#a{i} :a{i}")
        return {
            "TableName": table,
            "Key": {"pk": {"S": self.pk}, "sk": {"S": self.sk}},
            "UpdateExpression": "SET #ttl = :ttl" + (" ADD " + ", ".join(clauses) if clauses else ""),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }


def updates_for(
    keys: dict[tuple[str, int], KeyHour],
    pk: Callable[[str], str],
    chained: Mapping[tuple[str, int], int] | None = None,
) -> list[Update]:
    """The hourly and daily updates for one side of a batch (keys, or APIs), in a stable order;
    ``chained``: the requests to add to a chain's first key's day (one update per item, however
    many of its counts a batch holds: a transaction takes an item once)."""
    days: dict[tuple[str, int], KeyHour] = {}
    found = []
    for (name, start), counts in sorted(keys.items()):
        found.append(Update(pk(name), hour_sk(start), counts, start + HOUR_TTL_S))
        day = start - start % DAY
        days.setdefault((name, day), KeyHour()).merge(counts)
    for (name, day), requests in (chained or {}).items():
        days.setdefault((name, day), KeyHour()).chained += requests
    for (name, day), counts in sorted(days.items()):
        found.append(Update(pk(name), day_sk(day), counts, day + DAY_TTL_S))
    return found


class UsageTable:
    def __init__(
        self,
        table: str,
        client: DynamoDBClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table = table
        self._client = client
        self.clock = clock
        self.sleep = sleep

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    def get_many(self, keys: Iterable[ItemKey]) -> dict[ItemKey, Item]:
        """The items that exist among ``keys`` (BatchGetItem, 100 at a time, unprocessed retried)."""
        wanted = sorted(set(keys))
        found: dict[ItemKey, Item] = {}
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in wanted[start : start + 100]]
                }
            }
            for attempt in range(ATTEMPTS * 2):
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    found[(item["pk"]["S"], item["sk"]["S"])] = item
                request = dict(response.get("UnprocessedKeys") or {})
                if not request:
                    break
                self.sleep(0.05 * 2**attempt)
            else:
                raise RuntimeError("usage table: reads left unprocessed after retries")
        return found

    def apply(
        self, batch_id: str, updates: Sequence[Update], held: dict[ItemKey, Item]
    ) -> tuple[set[ItemKey], int]:
        """Add a batch's counts: chunks of :data:`CHUNK` updates, each one transaction with its marker.
        A chunk whose marker exists was counted by an earlier delivery and is passed over.
        Returns (the items this delivery added to, chunks written): the others held the batch's
        counts already when they were read."""
        written: set[ItemKey] = set()
        chunks = 0
        for number, start in enumerate(range(0, len(updates), CHUNK)):
            chunk = updates[start : start + CHUNK]
            actions: list[TransactWriteItemTypeDef] = [{"Put": self._marker(batch_id, number)}]
            actions += [{"Update": u.operation(self.table, held.get((u.pk, u.sk)))} for u in chunk]  # type: ignore[typeddict-item]
            if self._transact(actions):
                written |= {(u.pk, u.sk) for u in chunk}
                chunks += 1
        return written, chunks

    def _marker(self, batch_id: str, number: int) -> Any:
        return {
            "TableName": self.table,
            "Item": {
                "pk": {"S": f"b#{batch_id}"},
                "sk": {"S": f"c#{number}"},
                "ttl": {"N": str(int(self.clock()) + MARKER_TTL_S)},
            },
            "ConditionExpression": "attribute_not_exists(pk)",
        }

    def _transact(self, actions: list[TransactWriteItemTypeDef]) -> bool:
        """True once written; False if the marker was there (already counted). Conflicts with a
        concurrent writer of the same item are retried; anything else fails the batch, which Lambda
        delivers again (its chunks that were written are then passed over)."""
        for attempt in range(ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=actions)
                return True
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons") or []]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False
                if attempt + 1 == ATTEMPTS or not any(r == "TransactionConflict" for r in reasons):
                    raise
                self.sleep(0.05 * 2**attempt)
        return False  # pragma: no cover - the loop returns or raises

    def update_profile(self, kid: str, *, first_seen: int, networks: Sequence[str], expires_at: int) -> None:
        """Record that the key was seen (``first_seen`` is kept if set) and used from ``networks``:
        one UpdateItem, the same however often it is repeated (a string set holds a name once). The
        set never grows past :data:`MAX_NETWORKS`: when a concurrent writer left no room for all of
        ``networks``, none are added."""
        names = sorted({n for n in networks if n != OTHER})
        expression = "SET first_seen = if_not_exists(first_seen, :first), #ttl = :ttl"
        values: dict[str, Any] = {":first": {"N": str(first_seen)}, ":ttl": {"N": str(expires_at)}}
        condition = {}
        if names:
            expression += " ADD networks :networks"
            values[":networks"] = {"SS": names}
            values[":most"] = {"N": str(MAX_NETWORKS - len(names))}
            condition["ConditionExpression"] = "attribute_not_exists(networks) OR size(networks) <= :most"
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"pk": {"S": key_pk(kid)}, "sk": {"S": PROFILE_SK}},
                UpdateExpression=expression,
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=values,
                **condition,  # type: ignore[arg-type]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            self.update_profile(kid, first_seen=first_seen, networks=(), expires_at=expires_at)

    def query(self, pk: str, sk_from: str, sk_to: str) -> list[Item]:
        """The items of one key (or API) with ``sk_from <= sk <= sk_to``, oldest first."""
        paginator = self.client.get_paginator("query")
        items: list[Item] = []
        for page in paginator.paginate(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={":pk": {"S": pk}, ":from": {"S": sk_from}, ":to": {"S": sk_to}},
        ):
            items.extend(page.get("Items", []))
        return items


def merged(item: Item | None, counts: KeyHour) -> KeyHour:
    """What an item holds once ``counts`` are added (its stored bounds aside)."""
    total = decode(item) if item else KeyHour()
    total.merge(counts, bounded=False)
    return total


__all__ = [
    "DAY",
    "HOUR",
    "PROFILE_SK",
    "PROFILE_TTL_S",
    "Update",
    "UsageTable",
    "api_pk",
    "day_sk",
    "decode",
    "hour_sk",
    "key_pk",
    "merged",
    "profile_key",
    "read_profile",
    "start_of",
    "updates_for",
]
