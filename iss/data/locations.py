"""Where each picture was taken: the history file, the ISS orbit (TLE), and day or night.

Sources, in order of trust:

1. ``paths.history`` — the original project's file, one ``lat;lon;id;location`` line per
   located frame. Parsed robustly: a malformed line is reported with its line number and
   what was expected, then skipped; good lines still load. The last line of a duplicated id
   wins (duplicates are counted); an empty location becomes NULL.
2. ``paths.tle`` (optional) — two-line element sets of the ISS. For pictures that have a
   timestamp but no history line, the sub-satellite point is computed with SGP4
   (``sgp4`` package): TEME position -> Earth-fixed by the Greenwich mean sidereal time ->
   WGS84 geodetic latitude/longitude.

For both, ``is_day`` says whether the sun is above the horizon at that point and time (a
low-precision solar position, good to ~0.01 degree, plenty for day/night).

Times are UTC. Rows go to the ``pictures_location`` table (``source`` = history | tle).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine

from iss.config import Config
from iss.data.ids import id_problem, parse_timestamp
from iss.db import schema
from iss.db.queries import upsert

log = logging.getLogger(__name__)

HISTORY_FORMAT = "lat;lon;id;location"
MAX_LOCATION_LENGTH = 128  # = pictures_location.pictures_location_text
_EMPTY = {"", "none", "null", "nan", "na", "n/a", "-"}

# WGS84 ellipsoid.
WGS84_A_KM = 6378.137
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)

_UNIX_EPOCH_JD = 2440587.5
_J2000_JD = 2451545.0


class LocationError(Exception):
    """A locations input (history or TLE file) cannot be used at all."""


# --------------------------------------------------------------------------- #
# history.txt                                                                 #
# --------------------------------------------------------------------------- #

@dataclass
class HistoryRow:
    """One located picture from the history file (``line`` = where it was read)."""

    latitude: float | None
    longitude: float | None
    location: str | None
    line: int


@dataclass
class HistoryResult:
    """A parsed history file.

    Attributes
    ----------
    rows : dict of str to HistoryRow
        By picture id; for duplicated ids, the last line wins.
    warnings : list of str
        One message per skipped or suspicious line, naming the line and what was expected.
    lines : int
        Non-blank lines read.
    duplicates : int
        Lines whose id had already appeared.
    """

    rows: dict[str, HistoryRow] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    lines: int = 0
    duplicates: int = 0

    @property
    def skipped(self) -> int:
        """Lines that were malformed and not loaded."""
        return self.lines - len(self.rows) - self.duplicates


def _parse_coordinate(text: str, name: str, low: float, high: float) -> float | None:
    """A latitude or longitude in degrees; None when empty. Raises ValueError saying what was expected."""
    text = text.strip()
    if text.lower() in _EMPTY:
        return None
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} {value} outside [{low:g}, {high:g}]")
    return value


def _unquote(text: str) -> str:
    """A field without the spaces and the double quotes a spreadsheet may put around it."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('""', '"').strip()
    return text


def parse_history(source: str | Path | Iterable[str], name: str | None = None) -> HistoryResult:
    """Parse a history file of ``lat;lon;id;location`` lines.

    Parameters
    ----------
    source : path or iterable of str
        The file, or its lines.
    name : str, optional
        How to call the file in messages (default: its file name).

    Returns
    -------
    HistoryResult
        Malformed lines are skipped and reported in ``warnings`` as, e.g.,
        ``"history.txt line 42: expected 'lat;lon;id;location', got 3 fields"``.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
            decode_warning = None
        except UnicodeDecodeError as exc:
            text = raw.decode("latin-1")
            decode_warning = f"{name}: not UTF-8 ({exc.reason} at byte {exc.start}); read as Latin-1"
        lines: Iterable[str] = text.splitlines()
    else:
        lines, decode_warning, name = source, None, name or "history"
    result = HistoryResult()
    if decode_warning:
        result.warnings.append(decode_warning)
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(";", 3)  # the location text may itself contain ';'
        if number == 1 and [_unquote(f).lower() for f in fields[:3]] == ["lat", "lon", "id"]:
            continue  # a header line
        result.lines += 1
        where = f"{name} line {number}"
        if len(fields) < 4:
            result.warnings.append(f"{where}: expected '{HISTORY_FORMAT}', got {len(fields)} field"
                                   f"{'s' if len(fields) != 1 else ''}: {line[:80]!r}")
            continue
        lat_text, lon_text, picture_id, location = (_unquote(f) for f in fields)
        if not picture_id:
            result.warnings.append(f"{where}: expected a picture id or file name in field 3, got nothing")
            continue
        try:
            latitude = _parse_coordinate(lat_text, "latitude", -90.0, 90.0)
            longitude = _parse_coordinate(lon_text, "longitude", -180.0, 180.0)
        except ValueError as exc:
            result.warnings.append(f"{where}: expected '{HISTORY_FORMAT}' with degrees, {exc}")
            continue
        if (latitude is None) != (longitude is None):
            result.warnings.append(f"{where}: expected both latitude and longitude or neither, "
                                   f"got {lat_text.strip()!r} and {lon_text.strip()!r}")
            continue
        location = _unquote(location.rstrip().rstrip(";"))  # a spreadsheet pads short rows with ';'
        if len(location) > MAX_LOCATION_LENGTH:
            result.warnings.append(f"{where}: location has {len(location)} characters, "
                                   f"cut to {MAX_LOCATION_LENGTH}")
            location = location[:MAX_LOCATION_LENGTH]
        if picture_id in result.rows:
            result.duplicates += 1
            previous = result.rows[picture_id].line
            result.warnings.append(f"{where}: id {picture_id} already on line {previous}; keeping this line")
        result.rows[picture_id] = HistoryRow(latitude, longitude, location or None, number)
    return result


# --------------------------------------------------------------------------- #
# Time, sun and Earth geometry                                                #
# --------------------------------------------------------------------------- #

def to_julian(times: Sequence[dt.datetime] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Julian dates of naive-UTC (or aware) datetimes, as ``(whole, fraction)`` float arrays."""
    seconds = np.array([_unix_seconds(t) for t in times], dtype=np.float64)
    days = seconds / 86400.0
    whole = np.floor(days) + _UNIX_EPOCH_JD
    return whole, days - np.floor(days)


def _unix_seconds(t: dt.datetime) -> float:
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


def gmst_radians(jd_whole: np.ndarray, jd_fraction: np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time (IAU 1982, as used with SGP4's TEME frame), radians in [0, 2pi)."""
    t = ((np.asarray(jd_whole) - _J2000_JD) + np.asarray(jd_fraction)) / 36525.0
    seconds = (67310.54841 + (876600.0 * 3600.0 + 8640184.812866) * t + 0.093104 * t ** 2 - 6.2e-6 * t ** 3)
    return np.mod(np.radians(seconds / 240.0), 2 * np.pi)


def ecef_to_geodetic(xyz_km: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 latitude, longitude (degrees) and height (km) of Earth-fixed points, shape (n, 3)."""
    x, y, z = np.asarray(xyz_km, dtype=np.float64).T
    longitude = np.arctan2(y, x)
    p = np.hypot(x, y)
    latitude = np.arctan2(z, p * (1 - WGS84_E2))
    for _ in range(6):  # converges to < 1e-12 rad for points near the Earth
        n = WGS84_A_KM / np.sqrt(1 - WGS84_E2 * np.sin(latitude) ** 2)
        height = p / np.cos(latitude) - n
        latitude = np.arctan2(z, p * (1 - WGS84_E2 * n / (n + height)))
    n = WGS84_A_KM / np.sqrt(1 - WGS84_E2 * np.sin(latitude) ** 2)
    height = p / np.cos(latitude) - n
    return np.degrees(latitude), np.degrees(longitude), height


def geodetic_to_ecef(latitude_deg, longitude_deg, height_km=0.0) -> np.ndarray:
    """Earth-fixed xyz (km) of WGS84 points, shape (n, 3)."""
    lat, lon = np.radians(np.asarray(latitude_deg, float)), np.radians(np.asarray(longitude_deg, float))
    n = WGS84_A_KM / np.sqrt(1 - WGS84_E2 * np.sin(lat) ** 2)
    h = np.asarray(height_km, float)
    return np.stack([(n + h) * np.cos(lat) * np.cos(lon), (n + h) * np.cos(lat) * np.sin(lon),
                     (n * (1 - WGS84_E2) + h) * np.sin(lat)], axis=-1)


def teme_to_ecef(r_km: np.ndarray, jd_whole: np.ndarray, jd_fraction: np.ndarray) -> np.ndarray:
    """Rotate TEME positions (n, 3) into the Earth-fixed frame (polar motion neglected, ~10 m)."""
    theta = gmst_radians(jd_whole, jd_fraction)
    c, s = np.cos(theta), np.sin(theta)
    r = np.asarray(r_km, dtype=np.float64)
    return np.stack([c * r[:, 0] + s * r[:, 1], -s * r[:, 0] + c * r[:, 1], r[:, 2]], axis=-1)


def sun_elevation(times: Sequence[dt.datetime], latitude_deg, longitude_deg) -> np.ndarray:
    """Elevation of the sun's centre above the horizon (degrees), no refraction.

    The Astronomical Almanac's low-precision formulas (good to ~0.01 degree between 1950
    and 2050): mean longitude and anomaly -> ecliptic longitude -> right ascension and
    declination -> local hour angle from the sidereal time.
    """
    jd_whole, jd_fraction = to_julian(times)
    n = (jd_whole - _J2000_JD) + jd_fraction
    mean_longitude = np.radians(np.mod(280.460 + 0.9856474 * n, 360.0))
    anomaly = np.radians(np.mod(357.528 + 0.9856003 * n, 360.0))
    ecliptic_longitude = mean_longitude + np.radians(1.915 * np.sin(anomaly) + 0.020 * np.sin(2 * anomaly))
    obliquity = np.radians(23.439 - 0.0000004 * n)
    right_ascension = np.arctan2(np.cos(obliquity) * np.sin(ecliptic_longitude), np.cos(ecliptic_longitude))
    declination = np.arcsin(np.sin(obliquity) * np.sin(ecliptic_longitude))
    hour_angle = gmst_radians(jd_whole, jd_fraction) + np.radians(np.asarray(longitude_deg, float)) - right_ascension
    lat = np.radians(np.asarray(latitude_deg, float))
    sin_elevation = np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(hour_angle)
    return np.degrees(np.arcsin(np.clip(sin_elevation, -1.0, 1.0)))


def is_day(times: Sequence[dt.datetime], latitude_deg, longitude_deg, min_elevation: float = 0.0) -> np.ndarray:
    """Whether the sun is above ``min_elevation`` degrees at each point and time (bool array)."""
    return sun_elevation(times, latitude_deg, longitude_deg) > min_elevation


# --------------------------------------------------------------------------- #
# TLE and SGP4                                                                #
# --------------------------------------------------------------------------- #

@dataclass
class TleSet:
    """Element sets read from a TLE file, sorted by epoch."""

    satellites: list
    epochs_jd: np.ndarray
    warnings: list[str] = field(default_factory=list)


def load_tles(source: str | Path | Iterable[str], name: str | None = None) -> TleSet:
    """Read every two-line element set of a file (with or without name lines).

    Several sets of the same satellite at different epochs are kept: each time is then
    propagated from the set nearest in time. A malformed pair is reported and skipped.

    Raises
    ------
    LocationError
        When the file holds no usable element set.
    """
    from sgp4.api import Satrec

    if isinstance(source, (str, Path)):
        name = name or Path(source).name
        lines = Path(source).read_text(encoding="ascii", errors="replace").splitlines()
    else:
        lines, name = list(source), name or "TLE"
    satellites, warnings = [], []
    index = 0
    while index < len(lines):
        line = lines[index].rstrip()
        if not line.startswith("1 "):
            index += 1
            continue  # name lines and blank lines
        if index + 1 >= len(lines) or not lines[index + 1].startswith("2 "):
            warnings.append(f"{name} line {index + 1}: expected TLE line 2 (starting with '2 ') after line 1")
            index += 1
            continue
        try:
            satellite = Satrec.twoline2rv(line, lines[index + 1].rstrip())
        except ValueError as exc:
            warnings.append(f"{name} line {index + 1}: not a valid element set ({exc})")
        else:
            satellites.append(satellite)
        index += 2
    if not satellites:
        raise LocationError(f"{name}: no two-line element set found (expected lines starting with '1 ' and "
                            f"'2 ', e.g. from https://celestrak.org); {len(warnings)} malformed")
    order = np.argsort([s.jdsatepoch + s.jdsatepochF for s in satellites], kind="stable")
    satellites = [satellites[i] for i in order]
    epochs = np.array([s.jdsatepoch + s.jdsatepochF for s in satellites])
    return TleSet(satellites, epochs, warnings)


def subsatellite_points(tles: TleSet, times: Sequence[dt.datetime], max_days: float = 14.0
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-satellite latitude and longitude at each time (UTC), from the nearest element set.

    Parameters
    ----------
    tles : TleSet
    times : sequence of datetime, length n
    max_days : float, default=14
        Times further than this from every epoch get no position (TLEs go stale in weeks).

    Returns
    -------
    latitude, longitude : float arrays, shape (n,)
        Degrees (WGS84 geodetic); NaN where there is no position.
    valid : bool array, shape (n,)
    """
    n = len(times)
    latitude, longitude = np.full(n, np.nan), np.full(n, np.nan)
    valid = np.zeros(n, dtype=bool)
    if n == 0:
        return latitude, longitude, valid
    jd_whole, jd_fraction = to_julian(times)
    jd = jd_whole + jd_fraction
    # Nearest epoch: boundaries halfway between consecutive epochs.
    nearest = np.searchsorted((tles.epochs_jd[1:] + tles.epochs_jd[:-1]) / 2, jd)
    close = np.abs(jd - tles.epochs_jd[nearest]) <= max_days
    for k in np.unique(nearest[close]):
        pick = np.flatnonzero(close & (nearest == k))
        errors, r, _ = tles.satellites[k].sgp4_array(jd_whole[pick], jd_fraction[pick])
        ok = errors == 0
        pick, r = pick[ok], r[ok]
        ecef = teme_to_ecef(r, jd_whole[pick], jd_fraction[pick])
        lat, lon, _ = ecef_to_geodetic(ecef)
        latitude[pick], longitude[pick], valid[pick] = lat, lon, True
    return latitude, longitude, valid


# --------------------------------------------------------------------------- #
# The step: fill pictures_location                                            #
# --------------------------------------------------------------------------- #

@dataclass
class LocationSummary:
    """What :func:`update_locations` did."""

    history_lines: int = 0
    history_rows: int = 0
    history_duplicates: int = 0
    history_skipped: int = 0
    tle_rows: int = 0
    tle_missing: int = 0  # pictures with a time but no position (too far from every TLE epoch)
    written: int = 0
    warnings: list[str] = field(default_factory=list)


def utc_converter(timezone_name: str | None):
    """A function turning naive times in ``timezone_name`` into naive UTC times."""
    if not timezone_name or timezone_name.upper() == "UTC":
        return lambda t: t
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
    try:
        zone = ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise LocationError(f"ingest.timezone {timezone_name!r} is not a known time zone "
                            f"(expected e.g. 'UTC' or 'Europe/Paris')") from exc
    return lambda t: t.replace(tzinfo=zone).astimezone(dt.timezone.utc).replace(tzinfo=None)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) < 1e-4  # MySQL FLOAT keeps ~7 digits
    return a == b


def _resolve_ids(rows: dict[str, HistoryRow], pictures, warnings: list[str], name: str) -> dict[str, HistoryRow]:
    """History rows by picture id; field 3 may also name the picture's file (relative path, with or without
    its extension). A key that is neither, and cannot be an id, is reported and dropped."""
    by_name: dict[str, str] = {}
    for picture in pictures:
        by_name[picture.filename] = picture.pictures_id
        by_name.setdefault(picture.filename.rsplit(".", 1)[0], picture.pictures_id)
    ids = {picture.pictures_id for picture in pictures}
    resolved: dict[str, HistoryRow] = {}
    for key, row in rows.items():
        picture_id = key if key in ids else by_name.get(key, key)
        problem = id_problem(picture_id) if picture_id not in ids else None
        if problem:
            warnings.append(f"{name} line {row.line}: expected a picture id or file name in field 3, got {key!r} "
                            f"(no picture has that name, and {problem})")
            continue
        resolved[picture_id] = row
    return resolved


def update_locations(cfg: Config, engine: Engine, batch_size: int = 5000) -> LocationSummary:
    """Fill ``pictures_location`` from the history file and, when configured, the TLE file.

    Reads ``paths.history`` (if it exists), ``paths.tle`` (if set), the ``pictures`` table
    (timestamps); writes only rows that are new or changed, one transaction per batch.
    Re-running is idempotent.
    """
    summary = LocationSummary()
    pattern = cfg.get("ingest.filename_pattern")
    min_elevation = float(cfg.get("ingest.day_min_sun_elevation"))
    with engine.connect() as conn:
        pictures = conn.execute(select(schema.pictures.c.pictures_id, schema.pictures.c.taken_at,
                                       schema.pictures.c.filename)).all()
        taken = {r.pictures_id: r.taken_at for r in pictures}
        existing = {r.pictures_id: (r.pictures_latitude, r.pictures_longitude, r.pictures_location_text,
                                    r.source, None if r.is_day is None else bool(r.is_day))
                    for r in conn.execute(select(schema.pictures_location))}
    to_utc = utc_converter(cfg.get("ingest.timezone"))

    def timestamp(picture_id: str):
        if taken.get(picture_id) is not None:
            return taken[picture_id]  # already UTC
        parsed = parse_timestamp(picture_id, pattern)
        return to_utc(parsed) if parsed else None

    wanted: dict[str, tuple] = {}
    history_path = cfg.path("history")
    if history_path.is_file():
        history = parse_history(history_path)
        summary.history_lines, summary.history_rows = history.lines, len(history.rows)
        summary.history_duplicates, summary.history_skipped = history.duplicates, history.skipped
        summary.warnings.extend(history.warnings)
        resolved = _resolve_ids(history.rows, pictures, summary.warnings, history_path.name)
        ids = list(resolved)
        rows = [resolved[i] for i in ids]
        times = [timestamp(i) for i in ids]
        known = [k for k, (row, t) in enumerate(zip(rows, times)) if t is not None and row.latitude is not None]
        day = np.zeros(len(ids), dtype=object)
        day[:] = None
        if known:
            flags = is_day([times[k] for k in known], [rows[k].latitude for k in known],
                           [rows[k].longitude for k in known], min_elevation)
            for k, flag in zip(known, flags):
                day[k] = bool(flag)
        for picture_id, row, flag in zip(ids, rows, day):
            wanted[picture_id] = (row.latitude, row.longitude, row.location, "history", flag)
    else:
        log.info("no history file at %s: locations from history skipped", history_path)

    tle_setting = str(cfg.get("paths.tle") or "")
    if tle_setting:
        tle_path = cfg.path("tle")
        if not tle_path.is_file():
            raise LocationError(f"paths.tle is {tle_setting!r} but {tle_path} does not exist; "
                                f"set paths.tle to an existing TLE file or to \"\" to disable it")
        tles = load_tles(tle_path)
        summary.warnings.extend(tles.warnings)
        # Only pictures without history: a history position is an observation, SGP4 a model.
        todo = sorted(i for i, t in taken.items() if t is not None and i not in wanted
                      and (existing.get(i) is None or existing[i][3] == "tle"))
        times = [taken[i] for i in todo]
        lat, lon, valid = subsatellite_points(tles, times, float(cfg.get("ingest.tle_max_days")))
        day = is_day(times, np.nan_to_num(lat), np.nan_to_num(lon), min_elevation) if todo else []
        for k, picture_id in enumerate(todo):
            if valid[k]:
                wanted[picture_id] = (round(float(lat[k]), 5), round(float(lon[k]), 5), None, "tle", bool(day[k]))
        summary.tle_rows = int(valid.sum())
        summary.tle_missing = int(len(todo) - valid.sum())

    changed = [dict(pictures_id=i, pictures_latitude=v[0], pictures_longitude=v[1], pictures_location_text=v[2],
                    source=v[3], is_day=v[4])
               for i, v in wanted.items() if i not in existing or not all(map(_same, v, existing[i]))]
    for start in range(0, len(changed), batch_size):
        with engine.begin() as conn:  # one transaction per batch
            summary.written += upsert(conn, schema.pictures_location, changed[start:start + batch_size])
    for warning in summary.warnings[:20]:
        log.warning(warning)
    if len(summary.warnings) > 20:
        log.warning("... and %d more location warnings", len(summary.warnings) - 20)
    return summary
