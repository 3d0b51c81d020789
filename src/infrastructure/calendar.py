"""Cron slots in a time zone (croniter and zoneinfo), and the daylight-saving rules.

A cron expression has five fields (minute hour day month weekday) or six, with seconds
first (`*/5 * * * * *`); the macros `@yearly`, `@monthly`, `@weekly`, `@daily` and
`@hourly` are accepted. Times are wall-clock times in the schedule's zone:

- a time that does not exist (the hour skipped when clocks go forward) fires at the first
  moment after the gap (02:30 on that night fires at 03:00);
- a time that occurs twice (the hour repeated when clocks go back) fires once, at its
  first occurrence, when the hour field names hours; with a wildcard hour field (`*`,
  `*/2`) the expression means "every so often", so both occurrences fire.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterNotAlphaError, croniter

from domain.errors import InvalidTask
from domain.schedule import Cadence, Every, Schedule

MAX_CRON_LENGTH = 120
MAX_ZONE_LENGTH = 64
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_BAD_CRON = (CroniterBadCronError, CroniterNotAlphaError, ValueError, KeyError, TypeError)


class CronCadence:
    """The slots of a cron expression in a time zone."""

    def __init__(self, expression: str, zone: str) -> None:
        self._fields = _fields(expression)
        self._zone = _zone(zone)
        self._expression = " ".join(self._fields)
        self._seconds = len(self._fields) == 6
        hours = self._fields[2 if self._seconds else 1]
        self._hours_named = not hours.startswith("*")

    def next_after(self, moment: int) -> int:
        start = datetime.fromtimestamp(moment / 1000, self._zone)
        while True:
            slot = self._next(start)
            if not (self._hours_named and _repeated(slot, self._zone)):
                return int(slot.timestamp() * 1000)
            start = slot  # the second occurrence of a named time: fired at the first

    def _next(self, start: datetime) -> datetime:
        found = croniter(self._expression, start, second_at_beginning=self._seconds)
        slot: datetime = found.get_next(datetime)
        return slot


def _repeated(slot: datetime, zone: ZoneInfo) -> bool:
    """Whether `slot` is the second occurrence of its wall-clock time (clocks went back)."""
    wall = slot.replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0)
    return first.utcoffset() != slot.utcoffset() and first.timestamp() < slot.timestamp()


def _fields(expression: str) -> list[str]:
    text = expression.strip()
    if len(text) > MAX_CRON_LENGTH:
        raise InvalidTask("cron", f"must be at most {MAX_CRON_LENGTH} characters")
    text = MACROS.get(text.lower(), text)
    fields = text.split()
    if len(fields) not in (5, 6):
        raise InvalidTask("cron", "must have 5 fields (minute hour day month weekday) or 6")
    return fields


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    if not name or len(name) > MAX_ZONE_LENGTH:
        raise InvalidTask("timezone", "must be an IANA time zone name, such as Europe/Paris")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidTask("timezone", f"unknown time zone {name!r}") from None


class Calendar:
    """ICalendar: checks a schedule's cadence and gives its slots."""

    def check(self, cron: str | None, timezone: str, now: int) -> None:
        """InvalidTask naming `cron` or `timezone` unless the cadence can fire."""
        _zone(timezone)
        if cron is None:
            return
        cadence = CronCadence(cron, timezone)
        try:
            cadence.next_after(now)
        except _BAD_CRON as exc:
            raise InvalidTask("cron", f"not a cron expression: {exc}") from None
        except CroniterBadDateError:
            raise InvalidTask("cron", "never fires (no such date)") from None

    def cadence(self, schedule: Schedule) -> Cadence:
        if schedule.every_ms is not None:
            return Every(schedule.every_ms, schedule.anchor)
        if schedule.cron is None:  # a stored schedule always has one of the two
            raise InvalidTask("cron", "a schedule needs cron or everyMs")
        return _cron_cadence(schedule.cron, schedule.timezone)


@lru_cache(maxsize=256)
def _cron_cadence(cron: str, timezone: str) -> CronCadence:
    return CronCadence(cron, timezone)
