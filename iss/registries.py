"""The extension points of ``iss``: each is a dict from a config value to ``"module:name"`` of its class.

============================  ===============================================  =====================
config key                    registry                                         base class
============================  ===============================================  =====================
``sync.kind``                 :data:`iss.data.sync.TRANSPORTS`                 ``SyncSource``
slot ``rule.kind``            :data:`iss.posters.rules.RULES`                  ``RuleBase``
``clustering.n2d.method``     :data:`iss.clustering.final_steps.FINAL_STEPS`   ``FinalStep``
``clustering.default``        :data:`iss.clustering.CLUSTERING_TYPES`          ``ClusteringBase``
============================  ===============================================  =====================

Adding one is a new module with the class plus one line in its registry; the config schema, the
errors and the docs of the valid values read the registry's keys. Entries are strings so that
the registry can be read (to validate a config) without importing every implementation.
"""

from __future__ import annotations

import importlib


def load_entry(entry):
    """A registry entry as an object: ``"package.module:name"`` (or ``"module:Class.attribute"``) is
    imported, anything else is returned as is."""
    if not isinstance(entry, str):
        return entry
    module, _, name = entry.partition(":")
    value = importlib.import_module(module)
    for part in name.split("."):
        value = getattr(value, part)
    return value
