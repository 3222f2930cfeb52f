"""Google credentials: the token file, ADC without credentials, a 401 answered by a new token,
and tokens masked in every log line."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import structlog

from docproc import logconfig, redaction
from docproc.errors import ProviderAccountRefused
from docproc.gcp.auth import AdcTokens, FileTokens
from docproc.gcp.http import GoogleHttp
from tests.gcsserver import GcsStore
from tests.vertexserver import FakeVertex, Tokens


def test_the_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("ya29.first-token\n")
    tokens = FileTokens(path)
    assert tokens.token() == "ya29.first-token"
    path.write_text("ya29.second-token-longer\n")
    assert tokens.token() == "ya29.second-token-longer"
    os.utime(path, ns=(1, 1))
    path.write_bytes(b"ya29.third-token-longer!\n")  # same size, other time and bytes
    assert tokens.token() == "ya29.third-token-longer!"
    assert "ya29.third-token-longer!" in redaction.learnt()


@pytest.mark.parametrize("content", ["", "two tokens\n", "   \n"])
def test_a_token_file_without_one_token_refuses_the_account(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(ProviderAccountRefused, match="does not hold one token"):
        FileTokens(path).token()
    with pytest.raises(ProviderAccountRefused, match="cannot be read"):
        FileTokens(tmp_path / "missing").token()


def test_no_application_default_credentials_refuses_the_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    with pytest.raises(ProviderAccountRefused, match="no Google credentials"):
        AdcTokens().token()


class Rotating:
    """A token source whose token is replaced each time the server refuses it."""

    def __init__(self, *tokens: str) -> None:
        self.tokens, self.refusals = tokens, 0

    def token(self) -> str:
        return self.tokens[min(self.refusals, len(self.tokens) - 1)]

    def refused(self) -> None:
        self.refusals += 1


def test_a_401_makes_the_token_source_fetch_a_new_token_once(tmp_path: Path) -> None:
    store = GcsStore(tmp_path / "gcs")
    with FakeVertex(store, tokens=Tokens(accept=("ya29.fresh-token",))) as fake:
        url = f"{fake.url}/v1/projects/docproc-test/locations/us-east5/batchPredictionJobs"
        rotating = Rotating("ya29.stale-token", "ya29.fresh-token")
        http = GoogleHttp(rotating)
        assert http.call("GET", url).status == 200
        assert rotating.refusals == 1
        refused = Rotating("ya29.stale-token", "ya29.other-stale-token")
        denied = GoogleHttp(refused)
        assert denied.call("GET", url).status == 401  # tried once more, not forever
        assert refused.refusals == 1
        http.close()
        denied.close()
    assert fake.state.tokens.refused == [
        "ya29.stale-token",
        "ya29.stale-token",
        "ya29.other-stale-token",
    ]


def test_tokens_learnt_after_start_are_masked_in_log_lines() -> None:
    out = io.StringIO()
    logconfig.configure("info", "json", out)
    token = "ya29.learnt-" + os.urandom(8).hex()
    structlog.get_logger().info("before", header=f"Bearer {token}")
    redaction.remember(token)
    structlog.get_logger().info("after", header=f"Bearer {token}")
    first, second = out.getvalue().splitlines()
    assert token in first  # not known then (tokens are remembered the moment they are read)
    assert token not in second and logconfig.REDACTED in second
