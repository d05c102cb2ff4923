"""Run a claimed collection (:meth:`keysentry.client.holder.KeyHolder.work`): send its pickup,
call the application's callbacks, feed each outcome back. Any HTTP library drives it with a
``send`` that posts a :class:`~keysentry.client.holder.Pickup` and returns ``(status, body)``.

- Whatever ``send`` raises (building, signing, sending or reading the pickup) is a failed pickup,
  never the application's error; so is whatever a callback raises.
- :func:`run` (a synchronous client) calls the callbacks on the caller's thread; a callback that
  returns an awaitable (an ``async def``) has it closed unawaited and counts as failed, so nothing
  is switched to a successor that was never stored. :func:`arun` (an event loop) awaits an
  awaitable result; a plain function there runs on the event loop, so it should not block long.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from contextlib import closing
from typing import Any

from keysentry.client.holder import Flow, Outcome, Pickup, PickupError, Step

Send = Callable[[Pickup], tuple[int, bytes]]
AsyncSend = Callable[[Pickup], Awaitable[tuple[int, bytes]]]


def is_async_callable(function: object) -> bool:
    """Whether calling ``function`` gives a coroutine (an ``async def``, or an object whose
    ``__call__`` is one)."""
    if inspect.iscoroutinefunction(function):
        return True
    return callable(function) and inspect.iscoroutinefunction(type(function).__call__)


def run(flow: Flow, send: Send) -> None:
    with closing(flow):
        try:
            step = next(flow)
            while True:
                step = flow.send(_outcome(step, send))
        except StopIteration:
            pass


async def arun(flow: Flow, send: AsyncSend) -> None:
    with closing(flow):
        try:
            step = next(flow)
            while True:
                step = flow.send(await _aoutcome(step, send))
        except StopIteration:
            pass


def _outcome(step: Step, send: Send) -> Outcome:
    try:
        if isinstance(step, Pickup):
            return Outcome(send(step))
        result = step.function(*step.args)
        if inspect.isawaitable(result):
            _discard(result)
            raise PickupError(
                f"{step.name} returned an awaitable, which a synchronous client cannot await: "
                "pass a plain function (or use httpx.AsyncClient)"
            )
        return Outcome(result)
    except Exception as error:
        return Outcome(error=error)


async def _aoutcome(step: Step, send: AsyncSend) -> Outcome:
    try:
        if isinstance(step, Pickup):
            return Outcome(await send(step))
        result: Any = step.function(*step.args)
        if inspect.isawaitable(result):
            result = await result
        return Outcome(result)
    except Exception as error:
        return Outcome(error=error)


def _discard(awaitable: Any) -> None:
    """Close a coroutine never to be awaited (no "never awaited" warning); cancel a future."""
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    elif callable(getattr(awaitable, "cancel", None)):
        awaitable.cancel()
