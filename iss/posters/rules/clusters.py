"""``kind: clusters``: a picture drawn at random (seeded) from the listed clusters of the run.

``clusters`` is a list of cluster labels or names, ``auto`` (the clusters drawn for the poster)
or ``auto:K`` (the K-th of them); :class:`ClusterRule` parses it and gives the pool, for this
kind and for ``best_of_cluster``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from iss.posters.rules import Rule

_AUTO_PATTERN = re.compile(r"^auto(?::(\d+))?$")


@dataclass(frozen=True)
class ClusterRule(Rule):
    """A rule that picks among the pictures of some clusters of the run.

    Attributes
    ----------
    clusters : tuple of int or str
        Explicit cluster labels or names (empty when ``auto`` is set).
    auto : int or None
        ``-1`` for ``clusters: auto`` (every cluster drawn for the poster), ``K >= 0`` for
        ``auto:K``, ``None`` for an explicit list.
    shortlist : int
        For ``best_of_cluster``: how many top-silhouette pictures are ranked by quality.
    """

    keys = frozenset({"clusters", "shortlist"})

    clusters: tuple[int | str, ...] = ()
    auto: int | None = None
    shortlist: int = 10

    @classmethod
    def parse(cls, kind, value, run, fail):
        shortlist = value.get("shortlist", 10)
        if not isinstance(shortlist, int) or isinstance(shortlist, bool) or shortlist < 1:
            raise fail(f"rule shortlist should be a positive integer, got {shortlist!r}")
        if "ids" in value:
            raise fail(f"a {kind!r} rule takes 'clusters', not 'ids' (use kind: pictures for explicit ids)")
        clusters = value.get("clusters", "auto")
        if isinstance(clusters, str):
            match = _AUTO_PATTERN.match(clusters.strip())
            if not match:
                raise fail(f"rule clusters {clusters!r} should be a list of cluster labels, 'auto' or 'auto:K'")
            auto = int(match.group(1)) if match.group(1) is not None else -1
            return cls(kind=kind, auto=auto, shortlist=shortlist, run=run)
        if (not isinstance(clusters, list) or not clusters
                or not all((isinstance(c, int) and not isinstance(c, bool)) or (isinstance(c, str) and c.strip())
                           for c in clusters)):
            raise fail(f"rule clusters should be a non-empty list of cluster labels or names, 'auto' or 'auto:K'; "
                       f"got {clusters!r}")
        return cls(kind=kind, clusters=tuple(dict.fromkeys(clusters)), shortlist=shortlist, run=run)

    def clusters_text(self) -> str:
        """``auto``, ``auto:0`` or ``2,6``."""
        if self.auto is not None:
            return "auto" if self.auto == -1 else f"auto:{self.auto}"
        return ",".join(map(str, self.clusters))

    def describe(self) -> str:
        return f"clusters {self.clusters_text()}"

    def pool(self, slot, pictures, auto, template, names):
        from iss.clustering.names import find_clusters

        if self.auto is not None:
            labels = auto if self.auto == -1 else [auto[self.auto]]
        else:
            labels = []
            for wanted in self.clusters:
                if isinstance(wanted, str):
                    found = find_clusters(names or {}, wanted)
                    if not found:
                        known = "; ".join(f"{k}: {v['name']}" for k, v in (names or {}).items()) or "none named yet"
                        raise template.error(f"no cluster named {wanted!r} in {pictures.run.describe()}; its "
                                             f"clusters: {known}", slot)
                    labels += found
                elif pictures.size(wanted) == 0:
                    raise template.error(
                        f"unknown cluster {wanted}: {pictures.run.describe()} has clusters "
                        f"{', '.join(map(str, pictures.clusters)) or 'none'}", slot)
                else:
                    labels.append(wanted)
        return pictures.members(list(dict.fromkeys(labels)))


@dataclass(frozen=True)
class ClustersRule(ClusterRule):
    """A seeded random draw among the clusters' pictures, passing over near-duplicates."""

    def choose(self, slot, available, picking):
        return picking.draw(slot, available)
