"""The compute setting: its values, the auto choice, clear errors for an unreachable scheduler or missing Dask."""

from __future__ import annotations

import socket
import sys

import pytest

from iss.compute import (ComputeError, ComputeSettings, check_scheduler, dask_worker_threads, match_worker_threads,
                         open_compute, run_task, step_store_url, task_name)
from iss.config import ConfigError, load_config


def _square(x):
    return x * x


@pytest.mark.parametrize("value", ["auto", "local", "synchronous", "tcp://10.0.0.5:8786", "tls://host:8786"])
def test_valid_scheduler_values_are_kept(value):
    assert check_scheduler(value) == value


@pytest.mark.parametrize("value", ["cluster", "10.0.0.5:8786", "http://host:8786", "tcp://", ""])
def test_a_bad_scheduler_value_is_refused_by_the_config_naming_the_key(tmp_path, value):
    with pytest.raises(ConfigError, match=r"compute\.scheduler.*expected auto, local, synchronous or a Dask "
                                          r"scheduler address"):
        load_config(mode="demo", root=tmp_path, overrides={"compute": {"scheduler": value}})


def test_auto_keeps_the_single_machine_path_for_a_local_folder_and_reads_a_url_on_a_local_cluster(cfg):
    settings = ComputeSettings.from_config(cfg)
    assert settings.scheduler == "auto" and settings.auto_min_pictures == 0
    assert settings.resolve(2_000) == settings.resolve(10**7) == "inprocess"  # measured: never slower
    assert settings.resolve(10, remote=True) == "local"
    threshold = ComputeSettings(auto_min_pictures=50_000)
    assert threshold.resolve(49_999) == "inprocess" and threshold.resolve(50_000) == "local"
    assert ComputeSettings(scheduler="synchronous").resolve(10) == "synchronous"
    assert ComputeSettings(scheduler="tcp://h:1").resolve(10**6) == "tcp://h:1"


def test_synchronous_runs_every_partition_in_this_process():
    with open_compute(ComputeSettings(scheduler="synchronous")) as compute:
        assert compute.client is None and compute.workers == 1
        assert sorted(compute.map_unordered(_square, [(i,) for i in range(5)])) == [(i, i * i) for i in range(5)]


@pytest.mark.slow
def test_a_task_on_a_worker_uses_only_the_threads_its_worker_was_given(dask_cluster):
    """Two single-threaded workers on this machine: each task's TensorFlow, numba and BLAS run one thread,
    not one per core (else one worker already takes every core and a second adds nothing)."""
    from tests.dask_tasks import thread_pools

    address, _ = dask_cluster
    with open_compute(ComputeSettings(scheduler=address)) as compute:
        seen = [pools for _, pools in compute.map_unordered(thread_pools, [()] * 4, key="pools")]
        # the task went by name: the scheduler did not import this module (nor TensorFlow with it)
        assert not compute.client.run_on_scheduler(lambda: "tensorflow" in sys.modules)
    assert seen == [{"tensorflow": 1, "numba": 1, "blas_openmp": [1]}] * 4


def test_a_task_goes_by_name_when_a_worker_can_import_it_and_by_value_otherwise():
    import functools

    def nested(x):
        return x

    assert task_name(_square) == f"{__name__}:_square"
    assert run_task(task_name(_square), 7) == 49  # imported by that name
    for by_value in (lambda x: x, nested, functools.partial(_square, 2)):
        assert task_name(by_value) is None
    _square.__module__ = "__main__"  # a worker's __main__ is not the caller's
    try:
        assert task_name(_square) is None
    finally:
        _square.__module__ = __name__


def test_a_task_name_the_worker_cannot_find_is_an_import_error_naming_it():
    with pytest.raises(ImportError, match="iss.compute has no no_such_task on this worker"):
        run_task("iss.compute:no_such_task")


def test_the_thread_pools_are_left_alone_outside_a_worker():
    assert dask_worker_threads() is None and match_worker_threads() is None


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_scheduler_is_one_clear_error_naming_the_address():
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_unused_port()}"
    with pytest.raises(ComputeError, match=rf"no Dask scheduler answers at {address} \(compute\.scheduler\) "
                                           r"within 1 s.*dask scheduler"):
        with open_compute(ComputeSettings(scheduler=address, connect_timeout=1)):
            pass


def test_missing_dask_is_a_clear_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    with pytest.raises(ComputeError, match=r"pip install 'iss\[dask\]'"):
        with open_compute(ComputeSettings(scheduler="local")):
            pass


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_a_task_that_cannot_reach_a_path_is_one_clear_error_naming_the_setting(tmp_path):
    with pytest.raises(ComputeError, match=r"cannot reach a path.*compute\.store"):
        with open_compute(ComputeSettings(scheduler="synchronous")) as compute:
            list(compute.map_unordered(_read, [(tmp_path / "missing",)]))


def test_each_step_has_its_own_store_beside_the_configured_one(cfg):
    interim = cfg.path("interim")
    assert step_store_url(cfg, "", "ingest") == str(interim / "ingest_partitions.zarr")
    assert step_store_url(cfg, "", "encode") == str(interim / "encode_partitions.zarr")
    assert step_store_url(cfg, "/mnt/shared/iss/p.zarr", "ingest") == "/mnt/shared/iss/p.zarr"
    assert step_store_url(cfg, "/mnt/shared/iss/p.zarr", "encode") == "/mnt/shared/iss/encode_partitions.zarr"
    assert step_store_url(cfg, "s3://bucket/iss/p.zarr", "predict") == "s3://bucket/iss/predict_partitions.zarr"
    assert step_store_url(cfg, "s3://bucket", "encode") == "s3://bucket/encode_partitions.zarr"
    assert step_store_url(cfg, "stores/p.zarr", "ingest") == str(cfg.root / "stores" / "p.zarr")
