"""API Gateway's usage plans, API keys and usage plan keys (REST APIs): the calls, made idempotent.

Each call here either changes one thing or finds it already so: creating an API key that exists
(by name) gives the existing one, an association that exists is left, a delete of something gone
is no error. No business rule: which key belongs where is :mod:`keysentry.plans_sync`'s.

An API key's value is whatever the caller gives; keysentry gives the key's usage identifier, never
a key (see :func:`keysentry.plans.usage_identifier`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError
from keysentry import aws

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_apigateway.type_defs import PatchOperationTypeDef

PAGE: Final = 500  # the most GetApiKeys and GetUsagePlanKeys give in one page


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    enabled: bool


@dataclass(frozen=True)
class UsagePlan:
    id: str
    name: str
    stages: frozenset[tuple[str, str]]  # (restApiId, stage)
    rate: float | None
    burst: int | None
    quota: tuple[int, str] | None  # (limit, period)
    description: str = ""


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _usage_plan(item: Any) -> UsagePlan:
    throttle, quota = item.get("throttle") or {}, item.get("quota") or {}
    return UsagePlan(
        id=item["id"],
        name=item.get("name", ""),
        stages=frozenset((s["apiId"], s["stage"]) for s in item.get("apiStages") or ()),
        rate=float(throttle["rateLimit"]) if "rateLimit" in throttle else None,
        burst=int(throttle["burstLimit"]) if "burstLimit" in throttle else None,
        quota=(int(quota["limit"]), str(quota["period"])) if quota.get("limit") else None,
        description=str(item.get("description", "")),
    )


class Gateway:
    """One account and region's API Gateway (REST) usage plans and API keys."""

    def __init__(self, client: APIGatewayClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> APIGatewayClient:
        if self._client is None:
            self._client = aws.client("apigateway")
        return self._client

    # ------------------------------------------------------------ usage plans

    def usage_plans(self, prefix: str) -> dict[str, UsagePlan]:
        """The usage plans whose name starts with ``prefix``, by name."""
        found: dict[str, UsagePlan] = {}
        for page in self.client.get_paginator("get_usage_plans").paginate():
            for item in page.get("items", []):
                if item.get("name", "").startswith(prefix):
                    plan = _usage_plan(item)
                    found[plan.name] = plan
        return found

    def create_usage_plan(
        self, name: str, description: str, stages: list[tuple[str, str]], throttle: Any, quota: Any
    ) -> str:
        kwargs: dict[str, Any] = {
            "name": name,
            "description": description,
            "apiStages": [{"apiId": api, "stage": stage} for api, stage in stages],
            "throttle": throttle,
            "tags": {"app": "keysentry"},
        }
        if quota is not None:
            kwargs["quota"] = quota
        return str(self.client.create_usage_plan(**kwargs)["id"])

    def update_usage_plan(self, plan_id: str, operations: list[PatchOperationTypeDef]) -> None:
        if operations:
            self.client.update_usage_plan(usagePlanId=plan_id, patchOperations=operations)

    # ------------------------------------------------------------ API keys

    def api_key(self, name: str) -> ApiKey | None:
        """The API key named exactly ``name`` (names are unique here: keysentry gives each its own)."""
        pages = self.client.get_paginator("get_api_keys").paginate(nameQuery=name, includeValues=False)
        for page in pages:
            for item in page.get("items", []):
                if item.get("name") == name:
                    return ApiKey(item["id"], name, bool(item.get("enabled")))
        return None

    def api_keys(self, prefix: str) -> dict[str, ApiKey]:
        """Every API key whose name starts with ``prefix``, by name: the account's API keys read a
        page of 500 at a time, filtered here (GetApiKeys' ``nameQuery`` is not documented as a prefix
        match, so it is not relied on)."""
        found: dict[str, ApiKey] = {}
        pages = self.client.get_paginator("get_api_keys").paginate(
            includeValues=False, PaginationConfig={"PageSize": PAGE}
        )
        for page in pages:
            for item in page.get("items", []):
                name = str(item.get("name", ""))
                if name.startswith(prefix):
                    found[name] = ApiKey(item["id"], name, bool(item.get("enabled")))
        return found

    def ensure_api_key(self, name: str, value: str, enabled: bool, description: str) -> ApiKey:
        """The API key named ``name``: found, or created with ``value`` (another writer that created
        it first is found)."""
        existing = self.api_key(name)
        if existing is not None:
            return existing
        try:
            item = self.client.create_api_key(
                name=name, value=value, enabled=enabled, description=description, tags={"app": "keysentry"}
            )
        except ClientError as error:
            if _code(error) != "ConflictException":
                raise
            found = self.api_key(name)
            if found is None:
                raise
            return found
        return ApiKey(item["id"], name, bool(item.get("enabled")))

    def set_enabled(self, key: ApiKey, enabled: bool) -> bool:
        """Enable or disable ``key``; whether anything changed."""
        if key.enabled == enabled:
            return False
        self.client.update_api_key(
            apiKey=key.id,
            patchOperations=[{"op": "replace", "path": "/enabled", "value": str(enabled).lower()}],
        )
        return True

    def delete_api_key(self, key: ApiKey) -> None:
        """Delete ``key`` and its usage plan keys (API Gateway drops them with the key; said here so
        that nothing is left wherever that is not so)."""
        for plan_id in self.plans_of(key):
            self.dissociate(plan_id, key)
        try:
            self.client.delete_api_key(apiKey=key.id)
        except ClientError as error:
            if _code(error) != "NotFoundException":
                raise

    # ------------------------------------------------------------ usage plan keys

    def plans_of(self, key: ApiKey) -> set[str]:
        """The ids of the usage plans ``key`` is associated with."""
        pages = self.client.get_paginator("get_usage_plans").paginate(keyId=key.id)
        return {item["id"] for page in pages for item in page.get("items", [])}

    def keys_on(self, plan_id: str) -> set[str]:
        """The ids of the API keys associated with the usage plan ``plan_id``, 500 a page."""
        pages = self.client.get_paginator("get_usage_plan_keys").paginate(
            usagePlanId=plan_id, PaginationConfig={"PageSize": PAGE}
        )
        return {str(item["id"]) for page in pages for item in page.get("items", [])}

    def associate(self, plan_id: str, key: ApiKey) -> None:
        try:
            self.client.create_usage_plan_key(usagePlanId=plan_id, keyId=key.id, keyType="API_KEY")
        except ClientError as error:
            if _code(error) != "ConflictException":
                raise

    def dissociate(self, plan_id: str, key: ApiKey) -> None:
        try:
            self.client.delete_usage_plan_key(usagePlanId=plan_id, keyId=key.id)
        except ClientError as error:
            if _code(error) != "NotFoundException":
                raise
