"""Picture ids and timestamps from file names."""

from __future__ import annotations

import datetime as dt

from iss.data.ids import (assign_ids, hashed_id, id_problem, is_temporary, normalise_extensions, parse_exif_datetime,
                          parse_timestamp, split_name)


def test_id_is_the_file_stem_when_it_is_safe():
    assert assign_ids(["20171113-181340.jpg", "frame_001.v2.PNG"]) == {
        "20171113-181340.jpg": "20171113-181340", "frame_001.v2.PNG": "frame_001.v2"}
    assert split_name("noext") == ("noext", "")
    assert split_name("2019/cam_a/b.jpg") == ("b", ".jpg")


# Issue 15, item 2: ordinary file names that were refused as bad_id. Expected ids written out:
# the stem made safe plus 8 hex digits of BLAKE2b of the relative path.
ODD_NAMES = {
    "Screenshot 1.png": "Screenshot_1_1d008af8",
    "IMG_0001 (1).JPG": "IMG_0001_1_a60040e6",
    "\u00e9t\u00e9.jpg": "ete_0e87fb50",  # été.jpg: accents folded
    "\u65e5\u672c\u306e\u5199\u771f.jpg": "7f4b58e8",  # 日本の写真.jpg: nothing ASCII left, the hash alone
    "a" * 90 + ".jpg": "a" * 55 + "_182cb4ee",  # 90 characters: cut to 64 with the hash
}


def test_any_file_name_gets_a_safe_unique_stable_id():
    ids = assign_ids(ODD_NAMES)
    for name, expected in ODD_NAMES.items():
        assert ids[name] == expected == hashed_id(name), name
        assert id_problem(ids[name]) is None and len(ids[name]) <= 64
    assert assign_ids(reversed(list(ODD_NAMES))) == ids  # the same whatever the listing order


def test_names_differing_only_in_extension_or_folder_get_different_ids():
    ids = assign_ids(["IMG_0002.jpg", "IMG_0002.JPG", "b.jpg", "2019/b.jpg", "2020/cam_a/c.jpg"])
    assert ids == {"IMG_0002.JPG": "IMG_0002", "IMG_0002.jpg": hashed_id("IMG_0002.jpg"),
                   "b.jpg": "b", "2019/b.jpg": hashed_id("2019/b.jpg"), "2020/cam_a/c.jpg": "c"}
    assert len(set(ids.values())) == 5
    assert hashed_id("2019/b.jpg").startswith("b_") and hashed_id("2019/b.jpg") != hashed_id("2020/b.jpg")


def test_known_files_keep_their_id_and_no_other_file_takes_one():
    known = {"old/b.jpg": "b", "x.jpg": "x"}
    ids = assign_ids(["b.jpg", "old/b.jpg", "x.jpg"], known=known)
    assert ids["old/b.jpg"] == "b" and ids["x.jpg"] == "x"
    assert ids["b.jpg"] == hashed_id("b.jpg")  # "b" belongs to old/b.jpg
    gone = assign_ids(["new/x.jpg"], known={"x.jpg": "x"})  # x.jpg deleted: its id is still not reused
    assert gone["new/x.jpg"] == hashed_id("new/x.jpg")


def test_case_differences_are_different_ids():
    assert assign_ids(["CaseTest.jpg", "casetest.jpg"]) == {"CaseTest.jpg": "CaseTest", "casetest.jpg": "casetest"}


def test_id_problem():
    assert id_problem("20171113-181340") is None
    assert id_problem("x" * 64) is None
    assert "at most 64" in id_problem("x" * 65)
    assert id_problem("") == "empty id"
    assert "' '" in id_problem("bad id")


def test_temporary_names_and_extensions():
    assert is_temporary(".a.jpg.part") and is_temporary("a.jpg.part") and is_temporary("dir/.hidden.jpg")
    assert not is_temporary("a.jpg")
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
