"""``sync.kind: none``: nothing to do, ``paths.collections`` already holds the pictures."""

from __future__ import annotations

from iss.data.sync.base import SyncRequest, SyncSource, SyncSummary


class NoSource(SyncSource):
    """Leaves the collection as it is."""

    def sync(self, request: SyncRequest) -> SyncSummary:
        return SyncSummary("none", str(request.destination), str(request.destination))
