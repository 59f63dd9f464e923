"""The option parsers every product command shares: one time parser for every time option."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from atmorep_cli.options import hours_after, parse_hours, parse_time
from atmorep_core.errors import ConfigError

# Spellings `datetime.fromisoformat` reads, which parse_time must read as it does (in UTC).
ISO_SPELLINGS = (
    "2019-03-22",
    "2019-03-22T12",
    "2019-03-22T12:00",
    "2019-03-22T12:00:00",
    "2019-03-22 12:00",
    "2019-03-22 12",
    "2019-03-22t12",
    "20190322T1200",
    "20190322T12",
    "2019-03-22T12Z",
    "2019-03-22T12:00:00Z",
    "2019-03-22T12:00+00:00",
    "2019-03-22T14:00+02:00",
    "2019-03-22T07:00-05:00",
    "2019-03-22T12:00:00.000000",
    "2019-W12-5",  # ISO week date: Friday of week 12
    "  2019-03-22T12  ",
)

# MARS / ai-models compact forms, which fromisoformat does not read (or, on older Pythons, reads
# another way): the hand value of what a MARS user means.
COMPACT = (
    ("20190322", datetime(2019, 3, 22, 0)),
    ("2019032212", datetime(2019, 3, 22, 12)),
    ("2019032200", datetime(2019, 3, 22, 0)),
    ("2019123123", datetime(2019, 12, 31, 23)),
)


def _as_naive_utc(time: datetime) -> datetime:
    return time if time.tzinfo is None else time.astimezone(UTC).replace(tzinfo=None)


@pytest.mark.parametrize("text", ISO_SPELLINGS)
def test_iso_spellings_read_as_fromisoformat_reads_them(text: str) -> None:
    expected = _as_naive_utc(datetime.fromisoformat(text.strip()))
    parsed = parse_time(text, "--init")
    assert parsed == expected and parsed.tzinfo is None


def test_offsets_are_converted_to_utc() -> None:
    assert parse_time("2019-03-22T14:00+02:00", "--init") == datetime(2019, 3, 22, 12)
    assert parse_time("2019-03-22T21:00-05:00", "--init") == datetime(2019, 3, 23, 2)
    assert parse_time("2019-03-22T12Z", "--init") == datetime(2019, 3, 22, 12)


@pytest.mark.parametrize(("text", "expected"), COMPACT)
def test_compact_dates_are_what_a_mars_user_means(text: str, expected: datetime) -> None:
    assert parse_time(text, "--init") == expected


def test_an_eight_digit_date_is_never_read_as_day_and_hour() -> None:
    """The old parser tried %Y%m%d%H first and read 20190322 as 2019-03-02T02."""
    assert parse_time("20190322", "--init") != datetime(2019, 3, 2, 2)


@pytest.mark.parametrize(
    "text",
    [
        "tomorrow",
        "2019-13-40",
        "2019-02-30",
        "2019032225",  # hour 25
        "201903221200",  # YYYYMMDDHHMM is neither ISO nor MARS
        "22.03.2019",
        "2019-03",
        "",
        "2019-03-22T12:00 UTC",
    ],
)
def test_other_spellings_are_refused_naming_option_text_and_an_example(text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_time(text, "--start")
    message = str(refused.value)
    assert message.startswith(f"--start {text!r}: expected a UTC time such as 2019-03-22T12")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "hour"),
    [
        ("2019-03-22T12:30", "2019-03-22T12"),
        ("2019-03-22T12:00:01", "2019-03-22T12"),
        ("20190322T1215", "2019-03-22T12"),
        ("2019-03-22T12:00+05:30", "2019-03-22T06"),  # 06:30 UTC
    ],
)
def test_times_off_the_hour_are_refused(text: str, hour: str) -> None:
    with pytest.raises(ConfigError, match="whole hours") as refused:
        parse_time(text, "--init")
    assert str(refused.value).startswith(f"--init {text!r}") and hour in str(refused.value)


def test_hours_after_a_start_uses_the_same_parser() -> None:
    start = datetime(2019, 3, 22)
    assert hours_after(start, "2019032212", "--plot-time") == 12
    assert hours_after(start, "2019-03-23T01:00+01:00", "--plot-time") == 24
    with pytest.raises(ConfigError, match="--plot-time 2019-03-21T23: not a whole number"):
        hours_after(start, "2019-03-21T23", "--plot-time")


@pytest.mark.parametrize(("text", "hours"), [("24h", 24), ("2d", 48), ("6", 6), (" 12 h ", 12)])
def test_durations(text: str, hours: int) -> None:
    assert parse_hours(text, "--lead") == hours


@pytest.mark.parametrize("text", ["5x", "-1h", "1.5h", "h", ""])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--lead"):
        parse_hours(text, "--lead")
