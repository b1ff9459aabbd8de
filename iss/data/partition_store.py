"""The chunked store that Dask workers write their results to (Zarr), one chunk per partition.

Why a store and not the task results: the pixels (~19 KB a picture at the default sizes) then go
from a worker to a place every machine can reach (a shared folder, ``s3://``, ``gs://``) instead
of through the scheduler, and a finished partition stays written if its worker dies later.
Why one chunk per partition: each task writes whole chunks that no other task touches, so two
tries of the same partition (a retry after a worker was lost) write the same bytes to the same
files, with no lock and no read-modify-write; a retry is harmless.

Layout (Zarr v3), for example ingest's::

    <url>/inputs   uint8 (n_partitions * partition_size, h, w, 3), chunks (partition_size, h, w, 3)
    <url>/thumbs   uint8 (n_partitions * partition_size, th, tw, 3), same chunking

and encode's ``<url>/latents`` float32 ``(n_partitions * partition_size, d)``, or prediction's
``<url>/features`` (what the tasks read). Row ``p * partition_size + k`` is the ``k``-th row of
partition ``p``; the task's result says how many rows of its chunk are used. The step reads each
chunk once, in partition order, into its output (the ingest cache, the latents file), then
removes the store.
"""

from __future__ import annotations

import numpy as np


def _zarr():
    from iss.compute import import_optional

    return import_optional("zarr", "the partitioned steps' chunked store")


def store_location(url: str) -> str:
    """What Zarr opens for ``url``: a local folder (``file://`` stripped, so it is created as needed), or the URL."""
    url = str(url)
    return url[len("file://"):] if url.startswith("file://") else url


class PartitionStore:
    """Named arrays of one partitioned run, chunked by partition; see the module docstring.

    Parameters
    ----------
    url : str
        Local folder or fsspec URL (``memory://`` works for one process only).
    partition_size : int
    """

    def __init__(self, url: str, partition_size: int):
        self.url, self.partition_size = str(url), int(partition_size)

    @classmethod
    def create(cls, url: str, n_partitions: int, partition_size: int, arrays: dict[str, tuple[tuple, str]],
               ) -> "PartitionStore":
        """Create (or replace) the store for ``n_partitions`` partitions of ``partition_size`` rows.

        Parameters
        ----------
        arrays : dict of str to (row shape, dtype)
            The arrays, e.g. ``{"inputs": ((27, 48, 3), "uint8")}`` or ``{"latents": ((288,), "float32")}``.
        """
        zarr = _zarr()
        group = zarr.open_group(store_location(url), mode="w")
        rows = n_partitions * partition_size
        for name, (shape, dtype) in arrays.items():
            # why no compressor: pixels are small noisy thumbnails and latents are floats, both
            # compress poorly, and the store lives only for the run; raw chunks cost no CPU.
            group.create_array(name, shape=(rows, *shape), chunks=(partition_size, *shape), dtype=dtype,
                               compressors=None, fill_value=0)
        return cls(url, partition_size)

    def write(self, partition: int, **rows: np.ndarray) -> None:
        """Write each named array's rows of a partition as its whole chunk (zero rows after them).

        The arrays are written in the order given, so a chunk of the last one means the partition
        is complete.
        """
        zarr = _zarr()
        group = zarr.open_group(store_location(self.url), mode="r+")
        start = partition * self.partition_size
        for name, values in rows.items():
            array = group[name]
            chunk = np.zeros((self.partition_size, *array.shape[1:]), dtype=array.dtype)
            chunk[:len(values)] = values
            array[start:start + self.partition_size] = chunk

    def read(self, partition: int, n: int, *names: str) -> tuple[np.ndarray, ...]:
        """The first ``n`` rows of a partition in each array of ``names``, in that order."""
        zarr = _zarr()
        group = zarr.open_group(store_location(self.url), mode="r")
        start = partition * self.partition_size
        return tuple(group[name][start:start + n] for name in names)

    def remove(self) -> None:
        """Delete the store (its pixels are in the cache now)."""
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.url)
        if fs.exists(path):
            fs.rm(path, recursive=True)
