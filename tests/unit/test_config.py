from pathlib import Path

import pytest

from conftest import ROOT
from wbl_assistant.config import ConfigError, Settings, settings_table


def test_defaults_then_environment_then_overrides():
    settings = Settings.from_env({"WBL_TOP_K": "9", "WBL_DATA_DIR": "/tmp/x", "WBL_CHROMA_HOST": ""}, top_k=3)
    assert settings.top_k == 3
    assert settings.data_dir == Path("/tmp/x")
    assert settings.chroma_host == "" and not settings.uses_server
    assert Settings.from_env({}).backend == "extractive"


@pytest.mark.parametrize(("env", "message"), [
    ({"WBL_TOP_K": "many"}, "WBL_TOP_K='many' is not a valid int"),
    ({"WBL_BACKEND": "gpt"}, "WBL_BACKEND must be extractive, openai or llamacpp"),
    ({"WBL_CHUNK_OVERLAP": "900"}, "WBL_CHUNK_OVERLAP"),
    ({"WBL_GUARD_MODE": "ignore"}, "WBL_GUARD_MODE"),
])
def test_bad_values_are_clear_errors(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("'", "'")):
        Settings.from_env(env)


def test_readme_configuration_table_lists_every_setting_with_its_default():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for variable, default, _ in settings_table():
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{variable}`")), None)
        assert row is not None, f"README's configuration table lacks {variable}"
        assert f"`{default}`" in row, f"README gives another default for {variable}"
