"""iss.config: mode selection, interpolation, paths and the errors a user sees."""

from pathlib import Path

import pytest

from iss.config import PROJ_ROOT, ConfigError, load_config
from iss.config_schema import Training, defaults


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_demo_mode_is_default_and_paths_resolve_under_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MODE", raising=False)
    monkeypatch.delenv("ISS_CONFIG", raising=False)
    cfg = load_config(root=tmp_path)
    assert cfg.mode == "demo"
    assert cfg.path("collections") == tmp_path / "data" / "raw" / "collections"
    assert cfg.database_url == f"sqlite:///{tmp_path}/data/iss_demo.db"


def test_mode_from_environment_picks_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("MODE", "dev")
    monkeypatch.setenv("MYSQL_PASSWORD", "s3cret")
    cfg = load_config(root=tmp_path)
    assert cfg.source == PROJ_ROOT / "config" / "config_dev.yaml"
    assert cfg.database_url.startswith("mysql+pymysql://root:s3cret@127.0.0.1:3306/")


def test_missing_mode_file_names_it_and_lists_modes():
    with pytest.raises(ConfigError, match=r"config_nosuch\.yaml not found.*available modes: .*demo"):
        load_config(mode="nosuch")


def test_interpolation_with_default_and_missing_variable(tmp_path, monkeypatch):
    path = write(tmp_path / "c.yaml", "a:\n  b: ${ISS_T_SET}/x\n  c: ${ISS_T_UNSET:-fallback}\n")
    monkeypatch.setenv("ISS_T_SET", "value")
    cfg = load_config(path=path)
    assert cfg.get("a.b") == "value/x" and cfg.get("a.c") == "fallback"

    bad = write(tmp_path / "bad.yaml", "database:\n  url: mysql://${ISS_T_NOPE}@h/db\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 'database\.url' uses \$\{ISS_T_NOPE\}"):
        load_config(path=bad)


def test_a_key_outside_the_schema_names_key_and_file(tmp_path):
    cfg = load_config(path=write(tmp_path / "c.yaml", "training:\n  epochs: 3\n"))
    assert cfg.get("training.epochs") == 3
    with pytest.raises(ConfigError, match=r"c\.yaml: missing key 'training\.batchsize'.*not a key of the config schema"):
        cfg.get("training.batchsize")
    with pytest.raises(ConfigError, match=r"missing key 'cluster'"):
        cfg.section("cluster.n2d")


def test_invalid_yaml_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path=write(tmp_path / "a.yaml", "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path=write(tmp_path / "b.yaml", "- 1\n- 2\n"))


def test_overrides_deep_merge_without_touching_the_original(tmp_path):
    cfg = load_config(mode="demo", root=tmp_path)
    other = cfg.with_overrides({"training": {"epochs": 1}})
    assert other.get("training.epochs") == 1
    assert other.get("training.batch_size") == cfg.get("training.batch_size")
    assert cfg.get("training.epochs") != 1


def test_every_mode_has_the_same_keys(monkeypatch):
    monkeypatch.setenv("MYSQL_PASSWORD", "x")

    def keys(node, prefix=""):
        if not isinstance(node, dict):
            return {prefix}
        return set().union(*(keys(v, f"{prefix}.{k}") for k, v in node.items())) if node else {prefix}

    demo, dev = load_config(mode="demo"), load_config(mode="dev")
    assert keys(demo.data) == keys(dev.data)
    template = load_config(path=PROJ_ROOT / "config" / "config_template.yaml")
    assert keys(demo.data) <= keys(template.data)


# --- the typed schema (issue 15, item 9) -------------------------------------------------------
WRONG_TYPES = [  # key, wrong value, what the message must say is expected
    ("training.epochs", "thirty", "expected a valid integer"),
    ("training.batch_size", "many", "expected a valid integer"),
    ("training.learning_rate", "fast", "expected a valid number"),
    ("training.mixed_precision", "perhaps", "expected a valid boolean"),
    ("ingest.batch_size", "big", "expected a valid integer"),
    ("ingest.workers", -1, "expected greater than or equal to 0"),
    ("ingest.max_pixels", "lots", "expected a valid integer"),
    ("ingest.input_size", [48], "expected a list of 2 items, got 1"),
    ("ingest.fit", "zoom", "expected 'stretch' or 'crop'"),
    ("ingest.extensions", 5, "expected 'auto' or a valid list"),
    ("sampling.seed", "abc", "expected a valid integer"),
    ("sync.workers", "four", "expected a valid integer"),
    ("sync.kind", "ftp", "expected 'local', 'rsync', 'http' or 'none'"),
    ("demo.n_frames", "2k", "expected a valid integer"),
    ("clustering.fit_sample", "half", "expected a valid integer"),
    ("clustering.default", "bogus", "expected one of 'classical', 'advanced', 'n2d', 'hdbscan'"),
    ("clustering.n2d.n_clusters", "many", "expected an integer >= 2 or 'auto'"),
    ("clustering.n2d.umap.n_neighbors", "twenty", "expected a valid integer"),
    ("clustering.hdbscan.min_cluster_size", 1, "expected greater than or equal to 2"),
    ("reports.thumb_quality", 101, "expected less than or equal to 100"),
    ("search.port", "http", "expected a valid integer"),
    ("posters.jpeg_quality", "best", "expected a valid integer"),
]


def nested(key: str, value) -> dict:
    out: dict = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


@pytest.mark.parametrize("key, value, expected", WRONG_TYPES, ids=[k for k, _, _ in WRONG_TYPES])
def test_a_value_of_the_wrong_type_names_file_key_value_and_expected_type(tmp_path, key, value, expected):
    import yaml

    path = write(tmp_path / "c.yaml", yaml.safe_dump(nested(key, value)))
    with pytest.raises(ConfigError) as info:
        load_config(path=path)
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"{path}: {key} is {value!r}; {expected}"), first


def test_every_bad_key_is_listed_at_once_and_overrides_are_checked_too(tmp_path):
    path = write(tmp_path / "c.yaml", "training:\n  epochs: thirty\n  batch_size: many\n")
    with pytest.raises(ConfigError) as info:
        load_config(path=path)
    assert [line.split(" is ")[0] for line in str(info.value).splitlines()[:2]] == [
        f"{path}: training.epochs", f"{path}: training.batch_size"]
    cfg = load_config(mode="demo", root=tmp_path)
    with pytest.raises(ConfigError, match=r"ingest\.workers is 'all'; expected a valid integer"):
        cfg.with_overrides({"ingest": {"workers": "all"}})


def test_values_are_coerced_and_left_out_keys_get_the_schema_default(tmp_path, monkeypatch):
    monkeypatch.setenv("ISS_T_EPOCHS", "12")
    cfg = load_config(path=write(tmp_path / "c.yaml", "training:\n  epochs: ${ISS_T_EPOCHS}\n"))
    assert cfg.get("training.epochs") == 12  # from the environment, a string, now an int
    assert cfg.get("training.batch_size") == Training().batch_size == 64
    assert cfg.section("clustering.n2d") == defaults()["clustering"]["n2d"]


def test_an_unknown_key_is_a_warning_with_the_closest_known_key(tmp_path, caplog):
    cfg = load_config(path=write(tmp_path / "c.yaml", "training:\n  epoch: 3\nnotes:\n  kind: auto\n"))
    assert cfg.get("training.epoch") == 3  # kept: a newer step may read it
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"{tmp_path / 'c.yaml'}: unknown key training.epoch (did you mean 'training.epochs'?); it is ignored " \
           f"unless a step reads it" in warnings
    assert any("unknown key notes" in w for w in warnings)


def test_the_shipped_configs_and_the_template_validate_without_warnings(monkeypatch, caplog):
    monkeypatch.setenv("MYSQL_PASSWORD", "x")
    for mode in ("demo", "dev"):
        load_config(mode=mode)
    load_config(path=PROJ_ROOT / "config" / "config_template.yaml")
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


# --- one default per key: the schema is the base, a mode's file holds only what differs (issue 16) ---------
def flat(node, prefix=""):
    """``{"a.b": value}`` for every leaf of a nested mapping (a mapping value of a schema key, such as
    ``sampling.proportions``, is compared whole)."""
    if isinstance(node, dict) and node and prefix not in ("sampling.proportions",):
        return {k: v for key, value in node.items() for k, v in flat(value, f"{prefix}.{key}" if prefix else key).items()}
    return {prefix: node}


def test_the_template_lists_every_schema_key_with_its_default_and_no_other(monkeypatch):
    import yaml

    monkeypatch.delenv("ISS_SYNC_SOURCE", raising=False)
    text = (PROJ_ROOT / "config" / "config_template.yaml").read_text()
    template, schema = flat(yaml.safe_load(text)), flat(defaults())
    assert sorted(set(schema) - set(template)) == [], "schema keys missing from config_template.yaml"
    assert sorted(set(template) - set(schema)) == [], "keys of config_template.yaml unknown to the schema"
    loaded = flat(load_config(path=PROJ_ROOT / "config" / "config_template.yaml").data)
    assert {k: v for k, v in loaded.items() if v != schema[k]} == {}, "template values that are not the default"


def test_the_mode_files_hold_only_what_differs_from_the_defaults(monkeypatch):
    import yaml

    monkeypatch.delenv("ISS_SYNC_SOURCE", raising=False)
    monkeypatch.setenv("MYSQL_PASSWORD", "x")
    for mode, differs in (("demo", {"demo.odd_frames"}), ("dev", {"database.url"})):
        loaded = flat(load_config(mode=mode).data)
        assert {k for k, v in loaded.items() if v != flat(defaults())[k]} == differs, mode
    for mode in ("demo", "dev"):  # nothing in a mode's file repeats a default
        raw = yaml.safe_load((PROJ_ROOT / "config" / f"config_{mode}.yaml").read_text()) or {}
        assert {k for k, v in (flat(raw) if raw else {}).items() if v == flat(defaults())[k]} == set(), mode


def test_a_complete_or_partial_file_given_by_iss_config_is_merged_over_the_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("ISS_SYNC_SOURCE", raising=False)
    monkeypatch.setenv("ISS_CONFIG", str(PROJ_ROOT / "config" / "config_template.yaml"))
    assert load_config(mode="dev").data == defaults()
    partial = write(tmp_path / "mine.yaml", "sampling:\n  proportions: {train: 0.5, test: 0.5}\n"
                                            "clustering:\n  n2d:\n    umap: {n_neighbors: 5}\n")
    monkeypatch.setenv("ISS_CONFIG", str(partial))
    cfg = load_config()
    assert cfg.source == partial
    assert cfg.get("sampling.proportions") == {"train": 0.5, "test": 0.5}  # a mapping value is replaced whole
    assert cfg.get("clustering.n2d.umap") == {**defaults()["clustering"]["n2d"]["umap"], "n_neighbors": 5}
    assert cfg.get("training.epochs") == defaults()["training"]["epochs"]


def test_sync_source_defaults_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ISS_SYNC_SOURCE", "user@host:/srv/pictures")
    assert load_config(mode="demo").get("sync.source") == "user@host:/srv/pictures"
    monkeypatch.delenv("ISS_SYNC_SOURCE")
    assert load_config(mode="demo").get("sync.source") == ""  # "" = paths.source
