"""Settings: prefix, .env location, list parsing, readable errors, identifier checks."""

import pytest

from routing_core.config import PROJECT_ROOT, Settings, load_settings, validate_identifier
from routing_core.errors import ConfigError


def test_env_file_is_project_root():
    assert Settings.model_config["env_file"] == PROJECT_ROOT / ".env"
    assert Settings.model_config["env_file"].is_absolute()


def test_env_file_read_from_any_directory(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("ROUTING_TOP_K=17\nROUTING_SOMETHING_UNKNOWN=1\nOTHER=2\n", encoding="utf-8")
    elsewhere = tmp_path / "deep" / "folder"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    settings = Settings(_env_file=env)
    assert settings.top_k == 17


def test_prefix_from_environment(monkeypatch):
    monkeypatch.setenv("ROUTING_MAX_CANDIDATES", "3")
    assert load_settings().max_candidates == 3


def test_features_comma_separated(monkeypatch):
    monkeypatch.setenv("ROUTING_FEATURES", "PART_TYPE:category:2.5, OUTDIAMETER:number")
    features = load_settings().features
    assert [(f.name, f.kind, f.weight) for f in features] == [("PART_TYPE", "category", 2.5), ("OUTDIAMETER", "number", 1.0)]


def test_features_json(monkeypatch):
    monkeypatch.setenv("ROUTING_FEATURES", '[{"name": "ITEM_MATERIAL", "kind": "category", "weight": 2}]')
    assert load_settings().features[0].name == "ITEM_MATERIAL"


def test_broken_json_names_setting(monkeypatch):
    monkeypatch.setenv("ROUTING_FEATURES", "[broken")
    with pytest.raises(ConfigError, match="ROUTING_FEATURES"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [("ROUTING_TOP_K", "abc"), ("ROUTING_TOP_K", "0"), ("ROUTING_DEFAULT_LOT_SIZE", "-1"), ("ROUTING_LANGUAGE", "fr"),
     ("ROUTING_DATA_SOURCE", "oracle"), ("ROUTING_ROUTING_VIEW", "x; DROP TABLE y")],
)
def test_wrong_value_names_setting(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_duplicate_feature_rejected(monkeypatch):
    monkeypatch.setenv("ROUTING_FEATURES", "PART_TYPE,PART_TYPE")
    with pytest.raises(ConfigError, match="listed twice"):
        load_settings()


def test_secret_not_in_error(monkeypatch):
    monkeypatch.setenv("ROUTING_ODBC_CONNECTION_STRING", "Driver=X;Pwd=hunter2")
    monkeypatch.setenv("ROUTING_TOP_K", "abc")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)


def test_secret_masked_in_repr(monkeypatch):
    monkeypatch.setenv("ROUTING_ODBC_CONNECTION_STRING", "Driver=X;Pwd=hunter2")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert settings.odbc_connection_string.get_secret_value().endswith("hunter2")


@pytest.mark.parametrize("name", ["dbo.BI_ROUTING_VIEW", "BI_ROUTING_VIEW", "[dbo].[BI ROUTING]", "erp.dbo.BI_ITEM_INFO_VIEW"])
def test_identifier_accepted(name):
    assert validate_identifier(name) == name


@pytest.mark.parametrize("name", ["x; DROP TABLE y", "a.b.c.d", "'quoted'", "", "view--", "1abc"])
def test_identifier_rejected(name):
    with pytest.raises(ValueError):
        validate_identifier(name)
