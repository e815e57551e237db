"""The function's Powertools ``Tracer``, without the X-Ray SDK when tracing is off.

Powertools' ``Tracer`` imports ``aws_xray_sdk.core`` and builds its recorder (a botocore client
among it) as soon as it is constructed, even with ``POWERTOOLS_TRACE_DISABLED=true``: about
0.1-0.2 s of every cold start here. So when tracing is off (the template's ``Tracing`` parameter
sets that variable, and Powertools itself turns tracing off outside Lambda), the Tracer gets a
provider that does nothing, and the SDK is never imported. Powertools has no such provider of its
own, hence the few lines below. With tracing on, it is Powertools' Tracer as usual.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

from . import SERVICE


def tracing_enabled(env: Mapping[str, str] = os.environ) -> bool:
    """Powertools' own rule: off when POWERTOOLS_TRACE_DISABLED is true, outside Lambda, and
    under SAM's or Chalice's local emulators."""
    if resolve_truthy_env_var_choice(env=env.get(constants.TRACER_DISABLED_ENV, "false")):
        return False
    in_lambda = bool(env.get(constants.LAMBDA_TASK_ROOT_ENV))
    emulated = bool(env.get(constants.SAM_LOCAL_ENV) or env.get(constants.CHALICE_LOCAL_ENV))
    return in_lambda and not emulated


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None: ...

    def add_subsegment(self, subsegment: Any) -> None: ...

    def remove_subsegment(self, subsegment: Any) -> None: ...

    def put_annotation(self, key: str, value: Any) -> None: ...

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class NoTracing(BaseProvider):
    """A tracing provider that records nothing (and imports nothing)."""

    _segment = _NoSegment()

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Iterator[BaseSegment]:
        yield self._segment

    @asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> AsyncIterator[BaseSegment]:
        yield self._segment

    def put_annotation(self, key: str, value: Any) -> None: ...

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...

    def patch(self, modules: Sequence[str]) -> None: ...

    def patch_all(self) -> None: ...


def build_tracer(env: Mapping[str, str] = os.environ) -> Tracer:
    if tracing_enabled(env):
        return Tracer(service=SERVICE)
    # disabled=False on purpose: Powertools' "disabled" path switches the X-Ray SDK off, importing it.
    return Tracer(service=SERVICE, provider=NoTracing(), disabled=False, auto_patch=False)


#: Shared by the handler and the Polyv client (Powertools keeps one configuration per process).
tracer = build_tracer()
