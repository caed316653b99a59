"""Token roles and `[newsroom] approval` as the settings read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher.config.settings import Settings
from publisher.domain.errors import ConfigError
from publisher.domain.states import Role
from tests.conftest import write_matrix


def load(tmp_path: Path, tokens: str, newsroom: dict | None = None) -> Settings:
    matrix = write_matrix(
        tmp_path / "matrix.toml", {"site": {"type": "rss"}},
        {"title": "Roles Daily"}, newsroom,
    )  # fmt: skip
    return Settings.load(
        {
            "PUBLISHER_CONFIG": str(matrix),
            "PUBLISHER_DATA_DIR": str(tmp_path / "var"),
            "PUBLISHER_API_TOKENS": tokens,
        }
    )


def test_a_token_may_carry_a_role_and_one_without_keeps_its_rights(tmp_path: Path) -> None:
    settings = load(tmp_path, "alice:s3cret:editor, bob:t0ken:writer,cms:plain", {"approval": True})
    assert settings.approval is True
    assert settings.api_tokens == {"s3cret": "alice", "t0ken": "bob", "plain": "cms"}
    assert settings.token_roles == {"s3cret": Role.EDITOR, "t0ken": Role.WRITER}
    assert "t0ken" not in repr(settings)
    assert load(tmp_path, "bob:t0ken:writer").approval is False  # off unless asked for


@pytest.mark.parametrize(
    ("tokens", "newsroom", "message"),
    [
        (
            "alice:s3cret:chief",
            None,
            "PUBLISHER_API_TOKENS: entry 1 (alice): role 'chief' is not one of editor, writer",
        ),
        ("alice::writer", None, "PUBLISHER_API_TOKENS: entry 1 is not of the form"),
        ("alice:s3cret", {"approval": "yes"}, "[newsroom] approval: must be true or false"),
    ],
)
def test_a_bad_role_or_switch_is_named(
    tmp_path: Path, tokens: str, newsroom: dict | None, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, tokens, newsroom)
    assert message in str(caught.value)
    assert "s3cret" not in str(caught.value)
