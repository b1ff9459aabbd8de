"""``kind: best_of_cluster``: the best picture of the listed clusters: the ``shortlist`` (default 10)
pictures with the highest silhouette, ranked by sharpness x exposure (:mod:`iss.posters.quality`)."""

from __future__ import annotations

from dataclasses import dataclass

from iss.posters.rules.clusters import ClusterRule


@dataclass(frozen=True)
class BestOfClusterRule(ClusterRule):
    priority = 1

    def describe(self) -> str:
        return f"best of {self.clusters_text()}"

    def choose(self, slot, available, picking):
        return picking.best(slot, available, self.shortlist)
