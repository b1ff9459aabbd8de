"""Locations: the history file, SGP4 sub-satellite points, the sun, and the pictures_location table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import select

from iss.data.locations import (LocationError, ecef_to_geodetic, geodetic_to_ecef, gmst_radians, is_day, load_tles,
                                parse_history, subsatellite_points, sun_elevation, to_julian, update_locations)
from iss.db import schema
from iss.db.engine import get_engine
from iss.db.queries import upsert

# The ISS element set of Skyfield's documentation ("Earth Satellites"), whose documented output
# for 2014-01-23 11:18:07 UTC is: Latitude 50deg 14' 37.4", Longitude -86deg 23' 23.3".
ISS_TLE = ["ISS (ZARYA)",
           "1 25544U 98067A   14020.93268519  .00009878  00000-0  18200-3 0  5082",
           "2 25544  51.6498 109.4756 0003572  55.9686 274.8005 15.49815350868473"]
SKYFIELD_TIME = dt.datetime(2014, 1, 23, 11, 18, 7)
SKYFIELD_LAT = 50 + 14 / 60 + 37.4 / 3600
SKYFIELD_LON = -(86 + 23 / 60 + 23.3 / 3600)


# --- history.txt -------------------------------------------------------------------------------

def test_good_lines_load():
    result = parse_history(["51.5;-0.1;20171113-181340;Europe", "-33.9;151.2;20171113-182340;Australia; NSW"])
    assert result.warnings == [] and result.lines == 2 and result.skipped == 0
    row = result.rows["20171113-181340"]
    assert (row.latitude, row.longitude, row.location, row.line) == (51.5, -0.1, "Europe", 1)
    assert result.rows["20171113-182340"].location == "Australia; NSW"  # ';' inside the location text


def test_malformed_lines_are_reported_with_line_and_expectation_then_skipped(tmp_path):
    path = tmp_path / "history.txt"
    path.write_text("\n".join([
        "10;20;a1;Ocean",  # 1 good
        "10;20;a2",  # 2 three fields
        "",  # 3 blank: ignored
        "abc;20;a3;Ocean",  # 4 not a number
        "95;20;a4;Ocean",  # 5 latitude out of range
        "10;200;a5;Ocean",  # 6 longitude out of range
        "10;20;bad id;Ocean",  # 7 bad id
        "10;;a6;Ocean",  # 8 one coordinate missing
        "30;40;a7;Land",  # 9 good
    ]) + "\n")
    result = parse_history(path)
    assert sorted(result.rows) == ["a1", "a7", "bad id"]  # field 3 may be a file name: checked against the pictures
    assert result.lines == 8 and result.skipped == 5
    assert result.warnings[0] == "history.txt line 2: expected 'lat;lon;id;location', got 3 fields: '10;20;a2'"
    joined = "\n".join(result.warnings)
    assert "line 4: expected 'lat;lon;id;location' with degrees, latitude 'abc' is not a number" in joined
    assert "line 5:" in joined and "latitude 95.0 outside [-90, 90]" in joined
    assert "line 6:" in joined and "longitude 200.0 outside [-180, 180]" in joined
    assert "line 8: expected both latitude and longitude or neither" in joined


def test_duplicates_last_wins_and_empty_fields():
    result = parse_history(["lat;lon;id;location", "1;2;a;First", "3;4;b;", "5;6;a;Second", ";;c;Somewhere",
                            "null;none;d;"])
    assert result.duplicates == 1 and result.lines == 5
    assert (result.rows["a"].latitude, result.rows["a"].location) == (5.0, "Second")
    assert result.rows["b"].location is None
    assert (result.rows["c"].latitude, result.rows["c"].longitude, result.rows["c"].location) == (None, None,
                                                                                                  "Somewhere")
    assert result.rows["d"].latitude is None
    assert any("line 4: id a already on line 2" in w for w in result.warnings)


def test_encodings_and_line_endings(tmp_path):
    path = tmp_path / "h.txt"
    path.write_bytes("\ufeff1;2;a;Océan\r\n3;4;b;x\r\n".encode("utf-8"))
    assert parse_history(path).rows["a"].location == "Océan"
    path.write_bytes("1;2;a;Oc\xe9an\n".encode("latin-1"))
    result = parse_history(path)
    assert result.rows["a"].location == "Océan" and "read as Latin-1" in result.warnings[0]


# --- geometry -----------------------------------------------------------------------------------

def test_gmst_at_j2000():
    """GMST at 2000-01-01 12:00 UT1 is 280.46061837 degrees (IAU 1982 definition)."""
    assert np.degrees(gmst_radians(np.array([2451545.0]), np.array([0.0])))[0] == pytest.approx(280.46061837, abs=1e-6)


def test_julian_dates():
    whole, fraction = to_julian([dt.datetime(2000, 1, 1, 12), dt.datetime(1970, 1, 1)])
    np.testing.assert_allclose(whole + fraction, [2451545.0, 2440587.5])


def test_geodetic_round_trip_and_equator():
    lat, lon, h = ecef_to_geodetic(geodetic_to_ecef([51.6, -33.0, 0.0, 89.9], [10.0, -170.0, 0.0, 45.0],
                                                    [420.0, 0.0, 0.0, 1.0]))
    np.testing.assert_allclose(lat, [51.6, -33.0, 0.0, 89.9], atol=1e-9)
    np.testing.assert_allclose(lon, [10.0, -170.0, 0.0, 45.0], atol=1e-9)
    np.testing.assert_allclose(h, [420.0, 0.0, 0.0, 1.0], atol=1e-6)
    lat, lon, h = ecef_to_geodetic(np.array([[6378.137 + 400.0, 0.0, 0.0]]))
    assert (lat[0], lon[0], h[0]) == pytest.approx((0.0, 0.0, 400.0))


def test_iss_position_matches_skyfields_documented_subpoint():
    tles = load_tles(ISS_TLE)
    lat, lon, valid = subsatellite_points(tles, [SKYFIELD_TIME])
    assert valid[0]
    assert lat[0] == pytest.approx(SKYFIELD_LAT, abs=0.01)
    assert lon[0] == pytest.approx(SKYFIELD_LON, abs=0.01)


def test_sub_satellite_latitude_never_exceeds_the_inclination():
    tles = load_tles(ISS_TLE)
    times = [dt.datetime(2014, 1, 21) + dt.timedelta(minutes=m) for m in range(0, 24 * 60, 2)]
    lat, lon, valid = subsatellite_points(tles, times)
    assert valid.all()
    # Geodetic latitude can exceed the geocentric inclination by up to ~0.2 degree at ISS height.
    assert 51.3 < np.abs(lat).max() < 51.65 + 0.25
    assert np.all((-180 <= lon) & (lon <= 180))


def test_positions_are_not_computed_far_from_the_epoch():
    tles = load_tles(ISS_TLE)
    _, _, valid = subsatellite_points(tles, [dt.datetime(2014, 1, 22), dt.datetime(2014, 6, 1)], max_days=14)
    assert list(valid) == [True, False]


def test_nearest_element_set_is_used():
    later = ["1 25544U 98067A   14040.93268519  .00009878  00000-0  18200-3 0  5082",
             "2 25544  51.6498  10.0000 0003572  55.9686 274.8005 15.49815350868473"]
    tles = load_tles(ISS_TLE + later)
    assert len(tles.satellites) == 2
    lat_a, lon_a, _ = subsatellite_points(tles, [SKYFIELD_TIME])
    assert (lat_a[0], lon_a[0]) == pytest.approx((SKYFIELD_LAT, SKYFIELD_LON), abs=0.01)


def test_bad_tle_files():
    tles = load_tles(ISS_TLE + ["1 25544U broken line", "no line 2 here"])
    assert len(tles.satellites) == 1 and "line 4" in tles.warnings[0]
    with pytest.raises(LocationError, match="no two-line element set"):
        load_tles(["hello", "world"])


def test_sun_at_equinox_noon_and_midnight_on_greenwich():
    noon, midnight = dt.datetime(2024, 3, 20, 12, 0), dt.datetime(2024, 3, 20, 0, 0)
    elevation = sun_elevation([noon, midnight], [0.0, 0.0], [0.0, 0.0])
    assert elevation[0] > 85 and elevation[1] < -85
    assert list(is_day([noon, midnight], [0.0, 0.0], [0.0, 0.0])) == [True, False]
    # June solstice noon: overhead on the Tropic of Cancer, 90 - 23.44 - 51.5 on a southern point.
    solstice = dt.datetime(2024, 6, 20, 12, 0)
    assert sun_elevation([solstice], [23.44], [0.0])[0] == pytest.approx(90, abs=1.5)
    assert sun_elevation([solstice], [-51.5], [0.0])[0] == pytest.approx(90 - 23.44 - 51.5, abs=1.5)
    # Noon moves west with the sun: 6 hours later it is noon at 90 degrees west.
    assert is_day([dt.datetime(2024, 3, 20, 18, 0)], [0.0], [-90.0])[0]
    assert not is_day([dt.datetime(2024, 3, 20, 18, 0)], [0.0], [90.0])[0]


# --- the pictures_location table ----------------------------------------------------------------

def _insert_pictures(engine, times: dict[str, dt.datetime | None]):
    now = dt.datetime(2024, 1, 1)
    with engine.begin() as conn:
        upsert(conn, schema.pictures, [dict(pictures_id=i, filename=f"{i}.jpg", taken_at=t, taken_at_source="filename",
                                            width=1280, height=720, file_size=1, file_mtime=0.0, cache_index=k,
                                            ingested_at=now) for k, (i, t) in enumerate(times.items())])


def _locations(engine):
    with engine.connect() as conn:
        return {r.pictures_id: r for r in conn.execute(select(schema.pictures_location))}


def test_update_locations_from_history_and_tle(db_cfg, tmp_path):
    (tmp_path / "iss.tle").write_text("\n".join(ISS_TLE) + "\n")
    cfg = db_cfg.with_overrides({"paths": {"tle": "iss.tle"}})
    engine = get_engine(cfg.database_url)
    _insert_pictures(engine, {"20140123-111807": SKYFIELD_TIME, "20140123-120000": dt.datetime(2014, 1, 23, 12),
                              "20140601-000000": dt.datetime(2014, 6, 1), "nodate": None})
    history = cfg.path("history")
    history.parent.mkdir(parents=True)
    # Noon UTC on Greenwich's equator: day. History also lists a frame not ingested yet.
    history.write_text("0.0;0.0;20140123-120000;Gulf of Guinea\n0.0;180.0;20140123-120001;Pacific Ocean\nbad\n")
    summary = update_locations(cfg, engine)
    assert (summary.history_rows, summary.history_skipped, summary.tle_rows, summary.tle_missing) == (2, 1, 1, 1)
    rows = _locations(engine)
    assert set(rows) == {"20140123-120000", "20140123-120001", "20140123-111807"}
    assert rows["20140123-120000"].source == "history" and rows["20140123-120000"].is_day
    assert rows["20140123-120001"].is_day is not None and not rows["20140123-120001"].is_day  # midnight at 180 deg
    tle_row = rows["20140123-111807"]
    assert tle_row.source == "tle" and tle_row.pictures_location_text is None
    assert (tle_row.pictures_latitude, tle_row.pictures_longitude) == pytest.approx((SKYFIELD_LAT, SKYFIELD_LON),
                                                                                    abs=0.01)
    # 11:18 UTC at 86 W, 50 N in January: before sunrise.
    assert not tle_row.is_day

    again = update_locations(cfg, engine)
    assert again.written == 0  # idempotent: nothing changed, nothing written
    with engine.connect() as conn:
        assert len(list(conn.execute(select(schema.pictures_location)))) == 3

    # A history line arriving later for a TLE-located picture takes precedence.
    history.write_text(history.read_text() + "45.0;-80.0;20140123-111807;Lake Huron\n")
    third = update_locations(cfg, engine)
    assert third.written == 1 and _locations(engine)["20140123-111807"].source == "history"
    engine.dispose()


def test_missing_tle_file_is_a_clear_error(cfg):
    engine = get_engine(cfg.database_url)
    with pytest.raises(LocationError, match="paths.tle is 'nowhere.tle'"):
        update_locations(cfg.with_overrides({"paths": {"tle": "nowhere.tle"}}), engine)
    engine.dispose()


def test_a_history_saved_by_a_spreadsheet_is_read(tmp_path):
    """Issue 15: byte-order mark, CRLF, quoted fields, decimal commas and rows padded with ';'."""
    path = tmp_path / "history.txt"
    path.write_bytes('"lat";"lon";"id";"location"\r\n"10,5";"20,25";"a1";"Pacific; Ocean";;\r\n'
                     '-5;30;a2;;;\r\n'.encode("utf-8-sig"))
    result = parse_history(path)
    assert result.warnings == [] and result.lines == 2
    assert (result.rows["a1"].latitude, result.rows["a1"].longitude, result.rows["a1"].location) == \
        (10.5, 20.25, "Pacific; Ocean")
    assert (result.rows["a2"].latitude, result.rows["a2"].location) == (-5.0, None)
