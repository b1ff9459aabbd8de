"""A sync transport written the way the README's developer guide says (``sync.kind: folder_copy``):
the pictures of one folder, copied flat. ``test_sync_extending.py`` registers and runs it."""

from iss.data.sync import SyncError, SyncSource, SyncSummary, copy_file


class FolderCopySource(SyncSource):
    """Copies the pictures of ``<sync.source>/<sync.collections_subdir>`` (no sub-folders)."""

    def sync(self, request):
        folder = request.local_path() / request.subdir
        if not folder.is_dir():
            raise SyncError(f"sync source folder {folder} does not exist")
        summary = SyncSummary("folder_copy", str(folder), str(request.destination))
        for src in sorted(folder.iterdir()):
            if src.suffix.lower() in request.extensions and not src.name.startswith("."):
                state, size = copy_file(src, request.destination / src.name)  # through a .part name
                summary.listed += 1
                summary.transferred += state == "transferred"
                summary.skipped += state == "unchanged"
                summary.bytes += size
        return summary
