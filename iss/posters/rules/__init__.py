"""Slot rules (``rule.kind`` in a poster template): how a slot picks its picture.

:data:`RULES` maps each kind to its :class:`Rule` subclass, one module each:

``clusters`` (:mod:`.clusters`)
    a picture drawn at random (seeded) from the listed clusters of the run;
``best_of_cluster`` (:mod:`.best_of_cluster`)
    the best picture of the listed clusters (top silhouettes ranked by sharpness x exposure);
``pictures`` (:mod:`.pictures`)
    a picture drawn at random (seeded) from explicit picture ids.

A rule is parsed from its template mapping (:meth:`Rule.parse`), gives the ids it may pick from
(:meth:`Rule.pool`) and picks one of those still free (:meth:`Rule.choose`);
:mod:`iss.posters.templates` checks what every rule shares (a mapping, known keys, a registered
kind, ``run``) and :func:`iss.posters.selection.select_pictures` fills the slots in
:attr:`Rule.priority` order. A new kind is a :class:`Rule` subclass in a new module plus one line
in :data:`RULES` (see the README's developer guide).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from iss.registries import load_entry

# rule.kind -> "module:class" of its Rule; template errors list these keys
RULES: dict[str, str] = {
    "clusters": "iss.posters.rules.clusters:ClustersRule",
    "best_of_cluster": "iss.posters.rules.best_of_cluster:BestOfClusterRule",
    "pictures": "iss.posters.rules.pictures:PicturesRule",
}


@dataclass(frozen=True)
class Rule(ABC):
    """How a slot picks its picture.

    Attributes
    ----------
    kind : str
        Its key in :data:`RULES`.
    run : dict or None
        The clustering run of this rule, if it overrides the template's.
    """

    #: keys a rule of this kind takes besides ``kind`` and ``run``
    keys: ClassVar[frozenset[str]] = frozenset()
    #: slots are filled by increasing priority (the narrowest rules first), then by pool size
    priority: ClassVar[int] = 2
    #: whether the rule picks among the pictures of a clustering run
    needs_run: ClassVar[bool] = True
    # the clusters it names and its ``auto:K`` (-1: every cluster drawn for the poster), which
    # cluster rules (:mod:`.clusters`) set per rule; not annotated, so not fields here
    clusters = ()
    auto = None

    kind: str
    run: dict | None = None

    @classmethod
    @abstractmethod
    def parse(cls, kind: str, value: dict[str, Any], run: dict | None, fail) -> Rule:
        """The rule of the template mapping ``value`` (its keys already checked); ``fail(problem)``
        returns the :class:`~iss.posters.templates.PosterTemplateError` to raise."""

    @abstractmethod
    def describe(self) -> str:
        """Short text for previews and logs, e.g. ``best of auto:0`` or ``clusters 2,6``."""

    @abstractmethod
    def pool(self, slot, pictures, auto: list[int] | None, template, names: dict[int, dict] | None) -> list[str]:
        """The sorted picture ids the slot may show.

        Parameters
        ----------
        slot : Slot
        pictures : RunPictures or None
            The pictures of the rule's run (None when :attr:`needs_run` is False).
        auto : list of int or None
            The clusters drawn for this poster's ``auto`` rules on that run.
        template : Template
            For errors (:meth:`~iss.posters.templates.Template.error`).
        names : dict or None
            The run's cluster names, when a rule of the run names clusters.
        """

    @abstractmethod
    def choose(self, slot, available: list[str], picking) -> tuple[str, dict] | None:
        """``(picture id, detail)`` among ``available`` (the pool less the pictures already used), or None
        if none will do; ``picking`` is the poster's :class:`~iss.posters.selection.Picking` (seeded
        draws, file and near-duplicate checks, quality ranking)."""


def rule_class(kind: str) -> type[Rule]:
    """The class registered for ``kind`` in :data:`RULES`."""
    return load_entry(RULES[kind])


def rule_keys() -> list[str]:
    """Every key a rule of some kind takes (``kind`` and ``run`` included), sorted."""
    return sorted({"kind", "run"}.union(*(rule_class(kind).keys for kind in RULES)))
