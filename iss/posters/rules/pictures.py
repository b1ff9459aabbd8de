"""``kind: pictures``: a picture drawn at random (seeded) from explicit picture ids (``ids``)."""

from __future__ import annotations

from dataclasses import dataclass

from iss.posters.rules import Rule


@dataclass(frozen=True)
class PicturesRule(Rule):
    """Attributes: ``ids``, the picture ids to draw from."""

    keys = frozenset({"ids"})
    priority = 0
    needs_run = False

    ids: tuple[str, ...] = ()

    @classmethod
    def parse(cls, kind, value, run, fail):
        ids = value.get("ids")
        if "clusters" in value:
            raise fail("a 'pictures' rule takes 'ids', not 'clusters'")
        if not isinstance(ids, list) or not ids:
            raise fail(f"a 'pictures' rule needs a non-empty list 'ids' of picture ids, got {ids!r}")
        return cls(kind=kind, ids=tuple(str(i) for i in ids), run=run)

    def describe(self) -> str:
        return f"ids {','.join(self.ids[:3])}{'...' if len(self.ids) > 3 else ''}"

    def pool(self, slot, pictures, auto, template, names):
        return sorted(set(self.ids))

    def choose(self, slot, available, picking):
        return picking.draw(slot, available, avoid_near_duplicates=False)
