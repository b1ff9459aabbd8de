"""A poster rule written the way the README's developer guide says (``kind: newest``): the picture
with the largest id (the newest, for ids made of dates) among the listed clusters.
``test_rule_extending.py`` registers it and makes posters with it."""

from iss.posters.rules.clusters import ClusterRule


class NewestRule(ClusterRule):
    """Takes ``clusters`` like the other cluster rules (parsing and pool are inherited)."""

    def describe(self):
        return f"newest of {self.clusters_text()}"

    def choose(self, slot, available, picking):
        for pid in sorted(available, reverse=True):
            if picking.has_file(pid, slot):
                return pid, {"candidates": len(available)}
        return None
