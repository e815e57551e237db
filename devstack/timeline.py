"""A simulated timeline on the local stack: hours of a day in seconds of wall time.

The stack's clock (the function's, Polyv's, the AWS fault proxy's and moto's SQS) moves in steps;
at every step the template's schedules fire when their expressions say (``ScheduleV2`` events
read from template.yaml, their parameters at their defaults: ``cron(M H * * ? *)`` in their time
zone, minutes ``M`` or ``0/N``, hours ``H`` or ``H1-H2``, and ``rate(N minutes)``), and the
prewarm queue's event source delivers whatever SQS makes visible then (moto's queue, created
from the template: its visibility timeout, its ``maxReceiveCount`` to the dead-letter queue, and
the function's own ``ChangeMessageVisibility``). Nothing here knows those settings but the
template.

Written here because no library simulates Lambda's schedules and SQS poller on a moved clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cfnlint.decode import cfn_yaml

from polyv_prewarm.lambda_context import LocalLambdaContext

from .local_event_source import Delivery, LocalEventSource
from .stack import TEMPLATE, DevStack

Handler = Callable[[dict[str, Any], Any], Any]
_CRON = re.compile(r"cron\((\d+|0/\d+) (\d+|\d+-\d+) \* \* \? \*\)")
_RATE = re.compile(r"rate\((\d+) minutes?\)")


@dataclass
class Schedule:
    """One of the template's ``ScheduleV2`` events: when it fires, and what it sends."""

    name: str
    expression: str
    timezone: ZoneInfo
    payload: dict[str, Any]

    @property
    def period(self) -> int:
        """Seconds between two firings of a ``rate(N minutes)`` schedule."""
        match = _RATE.fullmatch(self.expression)
        if match is None:
            raise ValueError(f"{self.name} is not a rate(N minutes) schedule: {self.expression}")
        return int(match.group(1)) * 60

    def fires_between(self, start: datetime, end: datetime) -> bool:
        """Whether it fires in (start, end]."""
        if _RATE.fullmatch(self.expression):
            return int(end.timestamp()) // self.period > int(start.timestamp()) // self.period
        if match := _CRON.fullmatch(self.expression):
            local, until = start.astimezone(self.timezone), end.astimezone(self.timezone)
            return any(local < fire <= until for fire in self._firings(match, local.date()))
        raise ValueError(
            f"{self.name}: the timeline reads cron(M H * * ? *) and rate(N minutes), not {self.expression}"
        )

    def _firings(self, match: re.Match[str], first: date) -> list[datetime]:
        """The cron's firings on ``first`` and the next day, in its time zone."""
        minutes_field, hours_field = match.group(1), match.group(2)
        minutes = (
            list(range(0, 60, int(minutes_field[2:])))
            if minutes_field.startswith("0/")
            else [int(minutes_field)]
        )
        low, _, high = hours_field.partition("-")
        hours = list(range(int(low), int(high or low) + 1))
        return [
            datetime.combine(day, time(hour, minute), tzinfo=self.timezone)
            for day in (first, first + timedelta(days=1))
            for hour in hours
            for minute in minutes
        ]


def resolve(value: Any, document: dict[str, Any]) -> Any:
    """A template value with its ``Ref``, ``Fn::Sub`` and ``Fn::If`` resolved from the
    parameters' defaults (and the conditions' ``Fn::Equals`` on them)."""
    parameters = {name: str(p.get("Default", "")) for name, p in document.get("Parameters", {}).items()}
    if not isinstance(value, dict) or len(value) != 1:
        return value
    ((function, argument),) = value.items()
    if function == "Ref":
        return parameters[argument]
    if function == "Fn::Sub":
        return re.sub(r"\$\{(\w+)\}", lambda m: parameters[m.group(1)], argument)
    if function == "Fn::If":
        name, when_true, when_false = argument
        return resolve(when_true if _condition(name, document) else when_false, document)
    raise ValueError(f"the timeline does not resolve {function}")


def _condition(name: str, document: dict[str, Any]) -> bool:
    ((function, (left, right)),) = document["Conditions"][name].items()
    if function != "Fn::Equals":
        raise ValueError(f"the timeline resolves Fn::Equals conditions only, not {function}")
    return str(resolve(left, document)) == str(resolve(right, document))


def template_schedules(
    function: str = "PrewarmFunction", *, timezone: str = "Asia/Shanghai"
) -> list[Schedule]:
    """The function's schedules as template.yaml declares them (a ``!Ref QuotaTimezone`` is the
    stack's quota time zone)."""
    document = cfn_yaml.load(str(TEMPLATE))
    events = document["Resources"][function]["Properties"].get("Events", {})
    schedules = []
    for name, event in events.items():
        if event["Type"] != "ScheduleV2":
            continue
        props = event["Properties"]
        zone = props.get("ScheduleExpressionTimezone", "UTC")
        schedules.append(
            Schedule(
                name,
                str(resolve(props["ScheduleExpression"], document)),
                ZoneInfo(timezone if isinstance(zone, dict) else zone),
                json.loads(props["Input"]),
            )
        )
    return schedules


class Timeline:
    def __init__(self, stack: DevStack, handler: Handler, *, step: timedelta = timedelta(minutes=1)) -> None:
        self.stack = stack
        self.handler = handler
        self.step = step
        self.schedules = template_schedules()
        self.source = LocalEventSource(stack.client("sqs"), stack.queues["PrewarmQueue"], handler)
        self.fired: list[tuple[datetime, str]] = []
        self.deliveries: list[tuple[datetime, Delivery]] = []

    def now(self) -> datetime:
        return self.stack.now()

    def move_to(self, when: datetime) -> None:
        """Set the stack's clock to ``when`` (forward only)."""
        self.stack.seconds_offset += max(0.0, (when - self.now()).total_seconds())

    def send(self, *bodies: dict[str, Any] | str) -> list[str]:
        """Producers' messages onto the prewarm queue, now; their ids."""
        sqs = self.stack.client("sqs")
        ids = []
        for body in bodies:
            text = body if isinstance(body, str) else json.dumps(body)
            ids.append(
                sqs.send_message(QueueUrl=self.stack.queues["PrewarmQueue"], MessageBody=text)["MessageId"]
            )
        return ids

    def run_until(self, end: datetime, *, every_step: Callable[[datetime], None] | None = None) -> None:
        """Step the clock to ``end``: at every step, the schedules due fire, then the queue's
        event source delivers what is visible."""
        while self.now() < end:
            before = self.now()
            self.deliver()
            self.move_to(min(end, before + self.step))
            for schedule in self.schedules:
                if schedule.fires_between(before, self.now()):
                    self.fired.append((self.now(), schedule.name))
                    self.handler(dict(schedule.payload), LocalLambdaContext())
            if every_step is not None:
                every_step(self.now())
        self.deliver()

    def deliver(self) -> None:
        for delivery in self.source.drain():
            self.deliveries.append((self.now(), delivery))
