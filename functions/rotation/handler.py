"""Scheduled (EventBridge) rotation run: thin over KeyService.run_schedule."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from keysentry.service import KeyService
from keysentry.settings import RotationSettings

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True, log_event=False)
def lambda_handler(
    event: dict[str, Any], context: LambdaContext, service: KeyService | None = None
) -> dict[str, Any]:
    summary = (service or KeyService.from_settings(RotationSettings.load().service)).run_schedule(
        remaining_ms=context.get_remaining_time_in_millis,
        on_error=lambda kid, error: logger.error(
            "rotation failed for a key", key_id=kid, error=type(error).__name__
        ),
    )
    for name, value in summary.as_dict().items():
        if name not in ("stopped_early", "examined"):
            metrics.add_metric(name=f"Keys{name.capitalize()}", unit=MetricUnit.Count, value=value)
    logger.info(
        "rotation run", **summary.as_dict(), rotated_keys=summary.rotated, expired_keys=summary.expired
    )
    heartbeat(context.function_name)
    return summary.as_dict()


def heartbeat(function_name: str) -> None:
    """1 for a run that completed, under this function's name (RotationHeartbeatAlarm fires when
    none comes: a stack of its own, whatever other stacks in the account do)."""
    with single_metric(
        name="RotationHeartbeat",
        unit=MetricUnit.Count,
        value=1,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name="function_name", value=function_name)
