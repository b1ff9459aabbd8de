"""The chunked store that Dask workers write decoded pixels to (Zarr), one chunk per partition.

Why a store and not the task results: the pixels (~19 KB a picture at the default sizes) then go
from a worker to a place every machine can reach (a shared folder, ``s3://``, ``gs://``) instead
of through the scheduler, and a finished partition stays written if its worker dies later.
Why one chunk per partition: each task writes whole chunks that no other task touches, so two
tries of the same partition (a retry after a worker was lost) write the same bytes to the same
files, with no lock and no read-modify-write; a retry is harmless.

Layout (Zarr v3)::

    <url>/inputs   uint8 (n_partitions * partition_size, h, w, 3), chunks (partition_size, h, w, 3)
    <url>/thumbs   uint8 (n_partitions * partition_size, th, tw, 3), same chunking

Row ``p * partition_size + k`` is the ``k``-th accepted picture of partition ``p``; the task's
result says how many rows of its chunk are pictures. The step reads each chunk once, in partition
order, into the ingest cache (:class:`iss.data.cache.ImageCache`, which every reader of the
pixels uses), then removes the store.
"""

from __future__ import annotations

import numpy as np


def _zarr():
    from iss.compute import import_optional

    return import_optional("zarr", "the partitioned ingest's chunked store")


def store_location(url: str) -> str:
    """What Zarr opens for ``url``: a local folder (``file://`` stripped, so it is created as needed), or the URL."""
    url = str(url)
    return url[len("file://"):] if url.startswith("file://") else url


class PartitionStore:
    """Pixels of one partitioned run; see the module docstring.

    Parameters
    ----------
    url : str
        Local folder or fsspec URL (``memory://`` works for one process only).
    partition_size : int
    """

    def __init__(self, url: str, partition_size: int):
        self.url, self.partition_size = str(url), int(partition_size)

    @classmethod
    def create(cls, url: str, n_partitions: int, partition_size: int, input_shape: tuple, thumb_shape: tuple,
               ) -> "PartitionStore":
        """Create (or replace) the store for ``n_partitions`` partitions of ``partition_size`` pictures."""
        zarr = _zarr()
        group = zarr.open_group(store_location(url), mode="w")
        rows = n_partitions * partition_size
        for name, shape in (("inputs", input_shape), ("thumbs", thumb_shape)):
            # why no compressor: the pixels are small noisy thumbnails that compress poorly, and the
            # store lives only for the run; raw chunks cost no CPU on either side.
            group.create_array(name, shape=(rows, *shape), chunks=(partition_size, *shape), dtype="uint8",
                               compressors=None, fill_value=0)
        return cls(url, partition_size)

    def write(self, partition: int, inputs: np.ndarray, thumbs: np.ndarray) -> None:
        """Write a partition's accepted pictures as its whole chunk (zero rows after them)."""
        zarr = _zarr()
        group = zarr.open_group(store_location(self.url), mode="r+")
        start = partition * self.partition_size
        for name, rows in (("inputs", inputs), ("thumbs", thumbs)):
            array = group[name]
            chunk = np.zeros((self.partition_size, *array.shape[1:]), dtype=np.uint8)
            chunk[:len(rows)] = rows
            array[start:start + self.partition_size] = chunk

    def read(self, partition: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, thumbs)``: the first ``n`` rows of a partition."""
        zarr = _zarr()
        group = zarr.open_group(store_location(self.url), mode="r")
        start = partition * self.partition_size
        return group["inputs"][start:start + n], group["thumbs"][start:start + n]

    def remove(self) -> None:
        """Delete the store (its pixels are in the cache now)."""
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.url)
        if fs.exists(path):
            fs.rm(path, recursive=True)
