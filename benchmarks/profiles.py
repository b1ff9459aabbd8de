"""Summaries of py-spy's sampling profiles (``py-spy record --format raw``: one line per distinct
stack, ``frame;frame;...;frame count``, the root first; a frame is ``function (file:line)``).

``summarise`` answers "what bounds this step": the share of samples per library (the innermost
frame that belongs to an installed package, or to ``iss``), the innermost functions (self
time) and the ``iss`` functions that contain the most samples (inclusive time).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def read_stacks(path: str | Path) -> list[tuple[list[str], int]]:
    """``[(frames root first, samples)]`` of a py-spy raw file; the ``process ...`` root frames are dropped."""
    stacks = []
    text = Path(path).read_text(errors="replace")
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue  # a continuation of a multi-line command line in a process frame
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        if frames:
            stacks.append((frames, int(count)))
    return stacks


def _parts(frame: str) -> tuple[str, str]:
    match = FRAME.match(frame)
    return (match["func"], match["file"]) if match else (frame, "")


def _relative(file: str) -> tuple[str, str]:
    """(library, path inside it) of a source file as py-spy names it (relative to its ``sys.path``
    entry, e.g. ``numba/core/compiler.py``): the top-level package, or ``python`` for the
    standard library, frozen modules and paths it could not shorten."""
    parts = Path(file).parts
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1:]
    if not parts or Path(file).is_absolute() and parts == Path(file).parts:
        return "python", file
    top = parts[0].split(".")[0]
    if top.startswith("<") or top in sys.stdlib_module_names:
        return "python", "/".join(parts)
    return top, "/".join(parts)


def library(file: str) -> str:
    """The package a source file belongs to (``iss``, ``tensorflow``, ... or ``python``)."""
    return _relative(file)[0]


def short(frame: str) -> str:
    """``function (path)``, the path inside its package."""
    func, file = _parts(frame)
    return f"{func} ({_relative(file)[1]})"


def summarise(path: str | Path, top: int = 12) -> dict:
    """Shares of samples by library, innermost function, and ``iss`` function (inclusive).

    Returns
    -------
    dict
        ``samples`` (total), ``by_library`` / ``self`` / ``iss_inclusive``: ``{name: share}``
        with shares in [0, 1], the ``top`` largest, in decreasing order.
    """
    stacks = read_stacks(path)
    total = sum(count for _, count in stacks) or 1
    libraries, leaves, ours = Counter(), Counter(), Counter()
    for frames, count in stacks:
        leaves[short(frames[-1])] += count
        # the innermost frame outside the standard library names who is working
        owner = next((lib for lib in (library(_parts(f)[1]) for f in reversed(frames)) if lib != "python"), "python")
        libraries[owner] += count
        for frame in {short(f) for f in frames if library(_parts(f)[1]) == "iss"}:
            ours[frame] += count

    def shares(counter: Counter) -> dict:
        return {name: round(n / total, 3) for name, n in counter.most_common(top)}

    return {"samples": total, "by_library": shares(libraries), "self": shares(leaves), "iss_inclusive": shares(ours)}
