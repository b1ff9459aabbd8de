"""Picture ids and timestamps from file names."""

from __future__ import annotations

import datetime as dt

import pytest

from iss.data.ids import (BadIdError, id_problem, is_candidate, normalise_extensions, parse_exif_datetime,
                          parse_timestamp, picture_id, split_name)


def test_id_is_the_file_stem():
    assert picture_id("20171113-181340.jpg") == "20171113-181340"
    assert picture_id("frame_001.v2.PNG") == "frame_001.v2"
    assert split_name("noext") == ("noext", "")


@pytest.mark.parametrize("name, fragment", [
    ("bad id.jpg", "' '"),
    ("é.jpg", "'é'"),
    ("x" * 65 + ".jpg", "65 characters"),
    (".jpg", "starts with '.'"),
])
def test_unreadable_ids_are_refused_with_the_reason(name, fragment):
    with pytest.raises(BadIdError, match="rename the file") as info:
        picture_id(name)
    assert fragment in str(info.value)


def test_id_problem():
    assert id_problem("20171113-181340") is None
    assert id_problem("x" * 64) is None
    assert "at most 64" in id_problem("x" * 65)
    assert id_problem("") == "empty id"


def test_candidates_exclude_hidden_temporary_and_other_extensions():
    assert is_candidate("a.jpg") and is_candidate("A.JPEG") and is_candidate("b.png")
    assert not is_candidate(".a.jpg.part")
    assert not is_candidate("a.jpg.part")
    assert not is_candidate(".hidden.jpg")
    assert not is_candidate("notes.txt")
    assert not is_candidate("a.png", extensions=(".jpg",))
    assert normalise_extensions(["JPG", ".Png", "jpg"]) == (".jpg", ".png")


def test_timestamp_from_the_default_pattern():
    assert parse_timestamp("20171113-181340") == dt.datetime(2017, 11, 13, 18, 13, 40)
    assert parse_timestamp("20171113-181340-extra") is None
    assert parse_timestamp("holiday") is None
    assert parse_timestamp("20171313-181340") is None  # month 13


def test_timestamp_from_a_custom_pattern():
    assert parse_timestamp("cam1_2019-05-06T07.08.09", "cam1_%Y-%m-%dT%H.%M.%S") == dt.datetime(2019, 5, 6, 7, 8, 9)
    assert parse_timestamp("20171113-181340", "") is None


def test_exif_dates():
    assert parse_exif_datetime("2019:05:06 07:08:09") == dt.datetime(2019, 5, 6, 7, 8, 9)
    assert parse_exif_datetime(b"2019:05:06 07:08:09\x00") == dt.datetime(2019, 5, 6, 7, 8, 9)
    assert parse_exif_datetime("0000:00:00 00:00:00") is None
    assert parse_exif_datetime(None) is None
