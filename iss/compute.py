"""Where the partitioned steps run: the ``compute`` config section and the Dask client it opens.

``compute.scheduler`` says where the work of a partitioned step (ingest, encode, the clustering's
prediction of the collection, the search index's HNSW shards) goes:

``auto`` (default)
    A local folder keeps the step's own single-machine path (ingest's fork pool, encode and
    prediction in this process) at any size, unless
    ``compute.auto_min_pictures`` (> 0) says from how many pictures to start a LocalCluster; a URL
    source (``s3://...``) gets ``local``. Why: measured on 2 cores (README "Compute"), a LocalCluster
    is ready to decode ~1.2 s after it is asked for, and even warm it decodes 2,000 frames in 3.4 s
    where the fork pool (shared memory, no scheduler) takes 2.0 s: on one machine it never pays back.
    Dask earns its keep when its workers are other machines.
``local``
    A ``dask.distributed.LocalCluster`` of worker processes sized to the machine (one per core
    this process may use, ``compute.threads_per_worker`` threads each), closed when the step ends.
``synchronous``
    The same partition tasks, run one after the other in this process: no cluster, no pickling;
    for debugging and for stores only this process can see (``memory://``).
``tcp://host:8786`` (any Dask scheduler address)
    An existing cluster. Its workers need the same ``iss`` package (and dependencies) installed
    and must reach the source pictures and the ``compute.store`` path (a shared folder or an
    object store URL) under the same names as this machine.

Steps call :func:`open_compute` and hand its :class:`Compute` their partition function; they never
touch Dask directly, so every partitioned step (and the search index's sharded graph build,
:mod:`iss.search.shards`) reuses the same setting.
A task loads what every task of the step needs (an encoder, a fitted clustering) once per worker
with :func:`process_cached`, and runs with TensorFlow's, numba's and the BLAS/OpenMP thread pools
sized to its worker's threads (:func:`match_worker_threads`).
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEDULER_KINDS = ("auto", "local", "synchronous")
DASK_HINT = "pip install 'iss[dask]' (dask, distributed, zarr, fsspec)"


class ComputeError(Exception):
    """The compute setting cannot be honoured (bad value, scheduler unreachable, Dask missing)."""


def check_scheduler(value: str) -> str:
    """``value`` when it is a valid ``compute.scheduler``, else ValueError saying what is expected."""
    value = str(value).strip()
    if value in SCHEDULER_KINDS or is_address(value):
        return value
    # the config's message names the key and the value: "compute.scheduler is 'x'; expected ..."
    raise ValueError("expected auto, local, synchronous or a Dask scheduler address such as tcp://host:8786")


def is_address(value: str) -> bool:
    """True for a scheduler address: ``proto://host:port`` (tcp, tls, ucx, inproc, ws, wss)."""
    proto, sep, rest = str(value).partition("://")
    return bool(sep) and proto in ("tcp", "tls", "ucx", "inproc", "ws", "wss") and bool(rest)


@dataclass(frozen=True)
class ComputeSettings:
    """The ``compute`` section, read once.

    Attributes
    ----------
    scheduler : str
        ``auto``, ``local``, ``synchronous`` or a scheduler address.
    n_workers : int
        Worker processes of a LocalCluster; 0 = one per available core.
    threads_per_worker : int
        Threads in each LocalCluster worker (1: decoding is CPU-bound Python; processes scale).
    auto_min_pictures : int
        From this many pictures to process, ``auto`` starts a LocalCluster for a local folder too;
        0 (default) = never.
    partition_size : int
        Pictures per partition (= per task and per store chunk); 0 = chosen by the step.
    connect_timeout : float
        Seconds to wait for a scheduler address to answer.
    store : str
        Folder or fsspec URL of ingest's chunked store; the other steps put theirs beside it
        (:func:`step_store_url`); "" = under ``paths.interim``.
    """

    scheduler: str = "auto"
    n_workers: int = 0
    threads_per_worker: int = 1
    auto_min_pictures: int = 0
    partition_size: int = 0
    connect_timeout: float = 10.0
    store: str = ""

    @classmethod
    def from_config(cls, cfg) -> "ComputeSettings":
        """The settings of ``cfg`` (an :class:`iss.config.Config`)."""
        # the schema (iss.config_schema.Compute) has checked every value and filled the defaults
        return cls(**cfg.section("compute"))

    def resolve(self, n_items: int, remote: bool = False) -> str:
        """The scheduler a step with ``n_items`` to process uses; values other than ``auto`` are kept.

        ``auto`` is ``local`` for a ``remote`` source (a URL: only tasks read it in parallel) and
        from ``auto_min_pictures`` items on (when > 0); otherwise ``inprocess``, the step's own
        single-machine path.
        """
        if self.scheduler != "auto":
            return self.scheduler
        if remote or (self.auto_min_pictures > 0 and n_items >= self.auto_min_pictures):
            return "local"
        return "inprocess"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. under ``taskset`` or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


PARTITION_BYTES = 10 * 2**20  # the rows one task moves through the store, at most (pixels, latents)


def partition_size_for(n: int, workers: int, setting: int = 0, row_bytes: int = 19_440) -> int:
    """Rows per Dask partition: ``setting`` when > 0, else ~8 partitions per worker, from 16 rows up to
    ``PARTITION_BYTES`` of ``row_bytes`` rows (539 rows of ingest's 19,440 bytes of pixels at the
    default sizes, ~2,000 of encode's ~5 KB).

    Why: each task costs a few ms of CPU beyond its work (the scheduler, the worker's and this
    process's bookkeeping, a store chunk), so tasks of fewer than ~16 pictures waste time, and
    cheap rows (encode's ~5 KB a picture, 35 ms a partition of 512) lose a quarter of two busy
    cores to it; tasks holding more than ~10 MB make a lost worker's retry long and the last
    task finish late; 8 tasks per worker keeps every worker busy to the end.
    The partitions then come in a multiple of ``workers``, of (nearly) equal size, so that no
    worker idles while another runs the last one (49 partitions of 2,080 on 2 workers leave
    one idle for a whole task; 50 of 2,000 do not).

    Parameters
    ----------
    n, workers : int
        Rows to process, workers available.
    setting : int
        ``compute.partition_size`` (0 = choose).
    row_bytes : int
        Bytes of a row in the store and the cache (ingest: its input and thumbnail pixels; encode:
        the input pixels read and the latents written). The source files ingest reads are not
        counted (~170 KB a full-size frame).
    """
    if setting > 0:
        return setting
    workers = max(1, workers)
    largest = PARTITION_BYTES // max(1, row_bytes)
    size = max(16, min(largest, math.ceil(n / (workers * 8))))
    rounds = math.ceil(math.ceil(n / size) / workers)  # partitions each worker runs
    return max(16, math.ceil(n / (rounds * workers)))


def step_store_url(cfg, store: str, step: str) -> str:
    """Where the partitioned step ``step`` (``ingest``, ``encode``, ``predict``) puts its chunked store.

    ``store`` is ``compute.store``: "" = ``paths.interim``/``<step>_partitions.zarr``; otherwise a
    folder or URL naming ingest's store, beside which the other steps put ``<step>_partitions.zarr``
    (the same shared folder or bucket, and a name of their own, so two steps never share a store).
    A relative folder is under the project root.
    """
    name = f"{step}_partitions.zarr"
    if not store:
        return str(cfg.path("interim") / name)
    if "://" not in store:
        path = Path(store).expanduser()
        store = str(path if path.is_absolute() else cfg.root / path)
    if step == "ingest":
        return store
    parent = store.rstrip("/").rpartition("/")[0]
    return f"{parent}/{name}" if parent and not parent.endswith(":/") else f"{store.rstrip('/')}/{name}"


_PROCESS_CACHE: dict[str, tuple[Any, Any]] = {}


def process_cached(slot: str, key: Any, load: Callable[[], Any]) -> Any:
    """``load()``, kept in this process for the next call with the same ``slot`` and ``key``.

    Why: a Dask worker runs many tasks of a step; each would otherwise load the same encoder or
    fitted clustering again (seconds for a Keras model). One value per slot is kept: a new
    ``key`` (a retrained model: another mtime) replaces the old value, so memory stays bounded.

    Parameters
    ----------
    slot : str
        What is cached ("encoder", "clustering").
    key : hashable
        What identifies the value, e.g. ``(path, mtime)``.
    load : callable
        Makes the value when it is not cached.
    """
    held = _PROCESS_CACHE.get(slot)
    if held is not None and held[0] == key:
        return held[1]
    _PROCESS_CACHE.pop(slot, None)  # free the old value before loading the new one
    value = load()
    _PROCESS_CACHE[slot] = (key, value)
    return value


def dask_worker_threads() -> int | None:
    """The thread count (``nthreads``) of the Dask worker running this code; None outside a worker."""
    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return int(get_worker().state.nthreads)
    except ValueError:  # not in a worker
        return None


def _limit_tensorflow(n: int) -> None:
    """TensorFlow's intra- and inter-op pools at ``n`` threads, when it is loaded and has not run yet."""
    tf = sys.modules.get("tensorflow")
    if tf is None or tf.config.threading.get_intra_op_parallelism_threads() == n:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # it ran before this worker's first task: its pools are fixed for the process
        log.warning("TensorFlow already ran in this Dask worker before its first iss task: its thread pools stay "
                    "at one thread per core, not the worker's %d", n)


def match_worker_threads() -> int | None:
    """Size the numerical thread pools of this Dask worker to its ``nthreads``; return that number.

    Why: TensorFlow, numba and the BLAS/OpenMP libraries each start one thread per core of the
    machine, whatever the worker was given. Two single-threaded workers on 2 cores then run 4+
    busy threads and slow each other down, and one worker alone takes every core, so adding
    workers adds no throughput (encode at 10k: 0.88x from 1 to 2 workers, measured). Sized
    like this, a worker uses the cores it was started with (``dask worker --nthreads``,
    ``compute.threads_per_worker``). The limits are process-wide and stay set: every task of
    the worker wants the same ones. A worker of n threads running n tasks may still run n x n
    BLAS threads; one thread per worker process, as ``local`` starts them, avoids that.

    Returns
    -------
    int or None
        The worker's ``nthreads``; None outside a Dask worker, where nothing is changed.
    """
    n = dask_worker_threads()
    if n is None:
        return None
    from threadpoolctl import ThreadpoolController

    _limit_tensorflow(n)
    if "numba" in sys.modules:  # per calling thread
        numba = sys.modules["numba"]
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    else:  # read when a task first imports it (umap); importing it here would cost every worker
        os.environ["NUMBA_NUM_THREADS"] = str(n)
    # one controller per set of loaded modules: scanning the shared libraries costs ~3 ms
    process_cached("threadpools", len(sys.modules), ThreadpoolController).limit(limits=n)
    return n


def task_name(function: Callable) -> str | None:
    """``"module:qualname"`` of a function a worker can import by that name, else None.

    Parameters
    ----------
    function : callable

    Returns
    -------
    str or None
        None for what only travels by value: a lambda, a nested function, a ``functools.partial``,
        a function of ``__main__`` (a worker's ``__main__`` is not the caller's).
    """
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    found = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return f"{module}:{qualname}" if found is function else None


def run_task(function: str | Callable, *args) -> Any:
    """Run ``function(*args)`` on a Dask worker after :func:`match_worker_threads`: how
    :meth:`Compute.map_unordered` runs a task.

    Parameters
    ----------
    function : str or callable
        A :func:`task_name`, imported here, or the function itself.

    Raises
    ------
    ImportError
        The worker's ``iss`` has no such function (another version).

    Notes
    -----
    Why by name: the scheduler unpickles every task it is sent. Given the function itself, it
    imports the function's module, so encoding made a fresh scheduler import TensorFlow (3.6 s
    before the first encode task started, measured) and a scheduler machine needed TensorFlow.
    A name is a string to the scheduler; only the workers import it.
    """
    if isinstance(function, str):
        module, _, qualname = function.partition(":")
        found = importlib.import_module(module)
        try:
            for part in qualname.split("."):
                found = getattr(found, part)
        except AttributeError:
            raise ImportError(f"{module} has no {qualname} on this worker") from None
        function = found
    match_worker_threads()
    return function(*args)


def import_optional(module: str, needed_for: str):
    """Import ``module`` of the dask extra, or raise ComputeError saying which ``pip install`` brings it.

    Parameters
    ----------
    module : str
        ``distributed``, ``zarr`` or ``fsspec``.
    needed_for : str
        What needs it, for the message ("the Dask scheduler").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ComputeError(f"{needed_for} needs {module}, which is not installed ({exc}); {DASK_HINT}, "
                           f"or set compute.scheduler: auto") from None


class Compute:
    """An open compute setting: runs a function over partitions, locally or on Dask workers.

    Parameters
    ----------
    kind : str
        ``synchronous``, ``local`` or the scheduler address.
    client : distributed.Client or None
        None for ``synchronous``.
    """

    def __init__(self, kind: str, client=None, started_s: float = 0.0):
        self.kind, self.client, self.started_s = kind, client, started_s

    @property
    def workers(self) -> int:
        """Workers available now (1 for ``synchronous``)."""
        if self.client is None:
            return 1
        return max(1, len(self.client.scheduler_info(n_workers=-1)["workers"]))

    def share(self, value: Any) -> Any:
        """``value`` as a task argument that travels to each worker once, not with every task.

        On Dask, ``value`` is scattered to every worker (``Client.scatter`` with ``broadcast``), so a
        worker lost later takes only its own copy; pass the returned future to
        :meth:`map_unordered` in place of ``value``. ``synchronous``: ``value`` itself.
        """
        if self.client is None:
            return value
        return self.client.scatter(value, broadcast=True, hash=False)

    @contextmanager
    def _clear_errors(self, task: str) -> Iterator[None]:
        """The foreseeable failures of a task on a cluster as one ComputeError saying what to fix."""
        try:
            yield
        except ImportError as exc:
            raise ComputeError(f"the workers of {self.kind} cannot run {task}: {exc}; install the same iss "
                               f"package (pip install 'iss[dask]') on every worker") from None
        except OSError as exc:
            raise ComputeError(f"task {task} on the workers of {self.kind} cannot reach a path: {exc}; every worker "
                               f"must see the source pictures and compute.store under the same names (a shared "
                               f"folder or an object-store URL)") from None

    def map_unordered(self, function: Callable, arguments: Sequence[tuple], key: str = "task",
                      ) -> Iterator[tuple[int, Any]]:
        """Run ``function(*arguments[i])`` for every ``i``; yield ``(i, result)`` as each finishes.

        On Dask, a task lost with its worker (killed, out of memory) is run again on another one
        (up to ``distributed.scheduler.allowed-failures`` times), so ``function`` must be
        idempotent: write whole chunks of the store, never append. A task that raises stops the
        step with that error.

        Parameters
        ----------
        function : callable
            Ideally a module-level function, which travels to the scheduler by name (:func:`run_task`).
        arguments : sequence of tuple
        key : str
            Task name prefix shown on the dashboard.
        """
        if self.client is None:
            for i, args in enumerate(arguments):
                with self._clear_errors(f"{key}-{i}"):
                    result = function(*args)
                yield i, result
            return
        from distributed import as_completed

        target = task_name(function) or function  # by name when a worker can import it (run_task)
        futures = [self.client.submit(run_task, target, *args, key=f"{key}-{i}", pure=False, retries=2)
                   for i, args in enumerate(arguments)]
        index = {future.key: i for i, future in enumerate(futures)}
        try:
            for future in as_completed(futures):
                with self._clear_errors(future.key):
                    result = future.result()
                yield index[future.key], result
                future.release()  # its result is with the caller now: free the worker's memory
        finally:
            self.client.cancel([f for f in futures if not f.done()])


@contextmanager
def open_compute(settings: ComputeSettings, scheduler: str | None = None) -> Iterator[Compute]:
    """Open the scheduler ``scheduler`` (default ``settings.scheduler``; ``auto`` means ``local`` here).

    Logs the dashboard address and the start-up time; closes the client (and a LocalCluster it
    started) when the block ends, also on error.

    Raises
    ------
    ComputeError
        Dask is not installed, or no scheduler answers at the address within ``connect_timeout``.
    """
    kind = scheduler or settings.scheduler
    kind = "local" if kind in ("auto", "inprocess") else check_scheduler(kind)
    began = time.perf_counter()
    if kind == "synchronous":
        yield Compute(kind)
        return
    distributed = import_optional("distributed", "the Dask scheduler")
    # why: a LocalCluster's scheduler and nannies live in this process and log every worker's
    # arrival and departure at INFO; the step's own log says what matters (and the dashboard).
    logging.getLogger("distributed").setLevel(logging.WARNING)
    cluster = None
    if kind == "local":
        n_workers = settings.n_workers or available_cores()
        # why processes: decoding holds the GIL for much of its time; why no nanny restarts
        # beyond the default: a task lost with its worker is retried elsewhere anyway.
        cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=settings.threads_per_worker,
                                           processes=True, dashboard_address=":0", silence_logs=logging.WARNING)
        client = distributed.Client(cluster)
    else:
        try:
            client = distributed.Client(kind, timeout=f"{settings.connect_timeout}s")
        except (OSError, TimeoutError) as exc:
            raise ComputeError(f"no Dask scheduler answers at {kind} (compute.scheduler) within "
                               f"{settings.connect_timeout:g} s ({exc}); start one (`dask scheduler`, then "
                               f"`dask worker {kind}` on each machine), fix the address, or use "
                               f"--scheduler local") from None
    started = time.perf_counter() - began
    compute = Compute(kind, client, started)
    try:
        log.info("compute: %s with %d worker(s), ready in %.1f s; dashboard %s", kind, compute.workers, started,
                 client.dashboard_link or "not available")
        yield compute
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
