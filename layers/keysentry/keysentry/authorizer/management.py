"""Which API is keysentry's own management API, whose self-service routes a key refused for its
quota may still call (HOLDER_ROUTES): no other API's routes of the same names.

The API's id is in an SSM parameter the template fills from ``!Ref ManagementApi``; the authorizer
knows the parameter by name only. An environment variable holding the id itself would make the
template circular (the management API's authorizer names this function, which would name the API).
The parameter is read when first needed (a quota-refused key asking for a holder route), never on
the common path, and then kept for the container's life; a failed read is no exemption (the key
stays refused) and is tried again the next time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keysentry.routes import MethodArn

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient


class ManagementApi:
    def __init__(self, parameter: str = "", ssm: SSMClient | None = None, *, api_id: str = "") -> None:
        self.parameter = parameter  # the SSM parameter's name; empty: no API is the management API
        self._ssm = ssm
        self._api_id = api_id  # known already (an embedding, a test), or read from the parameter

    def api_id(self) -> str:
        """The management API's id; "" when none is configured or it cannot be read now."""
        if not self._api_id and self.parameter:
            try:
                from keysentry import aws

                ssm = self._ssm or aws.client("ssm")
                self._api_id = ssm.get_parameter(Name=self.parameter)["Parameter"].get("Value", "").strip()
            except Exception:  # no exemption; asked again on the next holder route
                return ""
        return self._api_id

    def serves(self, arn: MethodArn | None) -> bool:
        """Whether the request's ARN names the management API."""
        if arn is None:
            return False
        api_id = self.api_id()
        return bool(api_id) and arn.api_id == api_id
