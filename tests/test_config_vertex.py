"""``[vertex]``: defaults, endpoints, the storage emulator variable, and refusals naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from docproc import config
from docproc.costs import PriceTable
from docproc.errors import ConfigError
from tests.test_config import write

VERTEX = """
[[watch]]
path = "docs"
[task]
provider = "vertex"
model = "claude-sonnet-4-5@20250929"
[vertex]
project = "my-project"
location = "us-east5"
staging = "gs://docproc-staging/batches"
"""


@pytest.fixture(autouse=True)
def no_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)


def test_vertex_settings_with_their_defaults(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    settings = config.load(write(tmp_path, VERTEX))
    vertex = settings.vertex
    assert vertex is not None and settings.task.provider == "vertex"
    assert vertex.staging == "gs://docproc-staging/batches/"
    assert (vertex.bucket, vertex.prefix) == ("docproc-staging", "batches/")
    assert vertex.api_endpoint == "https://us-east5-aiplatform.googleapis.com"
    assert vertex.storage_endpoint == "https://storage.googleapis.com"
    assert not vertex.storage_anonymous and vertex.access_token_file is None
    assert (vertex.max_concurrent_jobs, vertex.structured, vertex.keep_staging) == (
        4,
        "tool",
        False,
    )
    assert settings.poll_interval == 30.0 and settings.batch.max_wait == 900.0
    default_model = config.load(write(tmp_path, VERTEX.replace(
        'model = "claude-sonnet-4-5@20250929"\n', "")))  # fmt: skip
    assert default_model.task.model == "claude-sonnet-4-5@20250929"


def test_endpoints_token_file_and_the_storage_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    text = VERTEX.replace('location = "us-east5"', 'location = "global"') + (
        'access_token_file = "secrets/token"\nstructured = "json"\n'
    )
    settings = config.load(write(tmp_path, text))
    assert settings.vertex is not None
    assert settings.vertex.api_endpoint == "https://aiplatform.googleapis.com"
    assert settings.vertex.access_token_file == tmp_path / "secrets" / "token"
    assert settings.vertex.structured == "json"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")
    emulated = config.load(write(tmp_path, VERTEX)).vertex
    assert emulated is not None and emulated.storage_anonymous
    assert emulated.storage_endpoint == "http://127.0.0.1:4443"
    own = VERTEX + 'storage_endpoint = "https://gcs.example.internal/"\n'
    chosen = config.load(write(tmp_path, own)).vertex
    assert chosen is not None and chosen.storage_endpoint == "https://gcs.example.internal"
    assert not chosen.storage_anonymous  # the key wins over the variable, with credentials


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (('project = "my-project"\n', ""), "vertex.project", "required"),
        (('project = "my-project"', 'project = "My Project"'), "vertex.project", "project id"),
        (('location = "us-east5"', 'location = "US East"'), "vertex.location", "region"),
        (('staging = "gs://docproc-staging/batches"\n', ""), "vertex.staging", "required"),
        (
            ('staging = "gs://docproc-staging/batches"', 'staging = "s3://docproc-staging/b/"'),
            "vertex.staging",
            "gs://bucket/prefix/",
        ),
        (
            ('staging = "gs://docproc-staging/batches"', 'staging = "gs://Bad_Bucket/b/"'),
            "vertex.staging",
            "not a valid Cloud Storage bucket",
        ),
        (
            ('staging = "gs://docproc-staging/batches"', 'staging = "gs://docproc-staging/a*/"'),
            "vertex.staging",
            "cannot take",
        ),
        (
            ('location = "us-east5"\n', 'location = "us-east5"\nstructured = "xml"\n'),
            "vertex.structured",
            "tool, json",
        ),
        (
            ('location = "us-east5"\n', 'location = "us-east5"\nmax_concurrent_jobs = 0\n'),
            "vertex.max_concurrent_jobs",
            "at least 1",
        ),
        (
            ('location = "us-east5"\n', 'location = "us-east5"\napi_endpoint = "ftp://x"\n'),
            "vertex.api_endpoint",
            "http:// or https://",
        ),
        (
            ('location = "us-east5"\n', 'location = "us-east5"\naccess_token = "ya29.x"\n'),
            "vertex.access_token",
            "never read from the config file",
        ),
        (
            ('model = "claude-sonnet-4-5@20250929"', 'model = "gemini-2.5-pro"'),
            "task.model",
            "has no price",
        ),
    ],
)
def test_bad_vertex_settings_are_refused_with_the_key(
    tmp_path: Path, change: tuple[str, str], key: str, reason: str
) -> None:
    (tmp_path / "docs").mkdir()
    assert change[0] in VERTEX
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, VERTEX.replace(*change)))
    assert info.value.key == key and reason in info.value.reason, str(info.value)


def test_vertex_without_its_table_is_refused(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    with pytest.raises(ConfigError, match=r"vertex\.location: is required"):
        config.load(write(tmp_path, VERTEX.split("[vertex]")[0]))


@pytest.mark.parametrize(
    ("model", "priced_as"),
    [
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),
        ("publishers/anthropic/models/claude-opus-4-5@20251101", "claude-opus-4-5"),
    ],
)
def test_vertex_model_names_are_priced_as_their_base_model(model: str, priced_as: str) -> None:
    prices = PriceTable()
    assert prices.price(model) == prices.price(priced_as) is not None
