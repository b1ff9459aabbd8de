"""iss.config: mode selection, interpolation, paths and the errors a user sees."""

from pathlib import Path

import pytest

from iss.config import PROJ_ROOT, ConfigError, load_config


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


def test_missing_key_names_key_and_file(tmp_path):
    cfg = load_config(path=write(tmp_path / "c.yaml", "training:\n  epochs: 3\n"))
    assert cfg.get("training.epochs") == 3
    assert cfg.get("training.batch_size", 32) == 32
    with pytest.raises(ConfigError, match=r"c\.yaml: missing key 'training\.batch_size'"):
        cfg.get("training.batch_size")
    with pytest.raises(ConfigError, match=r"missing key 'clustering'"):
        cfg.section("clustering.n2d")


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
