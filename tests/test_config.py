"""Every limit has a default and an environment variable; bad values are refused clearly."""

from pathlib import Path

import pytest

from deepfakescan.config import ENV_VARS, Settings


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.max_bytes > 0 and settings.video_frames == 32 and settings.model_dir is None


def test_environment_overrides_defaults():
    env = {
        "DEEPFAKESCAN_MAX_BYTES": "1000",
        "DEEPFAKESCAN_MAX_AUDIO_SECONDS": "12.5",
        "DEEPFAKESCAN_MODEL_DIR": "/tmp/models",
    }
    settings = Settings.from_env(env)
    assert settings.max_bytes == 1000
    assert settings.max_audio_seconds == 12.5
    assert settings.model_dir == Path("/tmp/models")


def test_keyword_overrides_win_over_environment():
    settings = Settings.from_env({"DEEPFAKESCAN_VIDEO_FRAMES": "8"}, video_frames=4)
    assert settings.video_frames == 4


@pytest.mark.parametrize("raw", ["lots", "-5", "0"])
def test_invalid_limit_names_the_variable(raw):
    with pytest.raises(ValueError, match="DEEPFAKESCAN_MAX_BYTES"):
        Settings.from_env({"DEEPFAKESCAN_MAX_BYTES": raw})


def test_every_setting_with_a_variable_exists():
    fields = set(Settings.__dataclass_fields__)
    assert set(ENV_VARS) <= fields


def test_every_environment_variable_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [var for var in ENV_VARS.values() if f"`{var}`" not in readme]
    assert not missing, f"README's settings table lacks {missing}"


def test_switches_read_yes_and_no_and_refuse_anything_else():
    assert Settings.from_env({"DEEPFAKESCAN_REQUIRE_KEYS": "Yes"}).require_keys is True
    assert Settings.from_env({"DEEPFAKESCAN_REQUIRE_KEYS": "0"}).require_keys is False
    with pytest.raises(ValueError, match="DEEPFAKESCAN_REQUIRE_KEYS"):
        Settings.from_env({"DEEPFAKESCAN_REQUIRE_KEYS": "maybe"})


def test_the_session_secret_never_shows_in_a_printed_settings_object():
    settings = Settings.from_env({"DEEPFAKESCAN_SECRET_KEY": "hunter2-hunter2"})
    assert settings.secret_key == "hunter2-hunter2" and "hunter2" not in repr(settings)


def test_allowed_hosts_are_names_without_brackets_or_case():
    settings = Settings.from_env({"DEEPFAKESCAN_ALLOWED_HOSTS": " Scan.Example , [::1] ,"})
    assert settings.host_names == ("scan.example", "::1")
