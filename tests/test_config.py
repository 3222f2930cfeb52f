"""Configuration: parsed once, frozen, errors name the key and the reason."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from docproc import config
from docproc.errors import ConfigError
from docproc.models import Mode

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "docproc.toml"
    path.write_text(text)
    return path


def test_full_config_parses_into_frozen_settings(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    path = write(
        tmp_path,
        """
state_dir = "state"
[intake]
rescan_interval = 60
settle_seconds = 2
[[watch]]
path = "docs"
mode = "poll"
poll_interval = 1.5
include = ["*.pdf"]
exclude = ["drafts/**"]
[extract]
workers = 3
max_file_mb = 10
timeout_seconds = 30
""",
    )
    settings = config.load(path)
    assert settings.state_dir == tmp_path / "state"
    assert settings.rescan_interval == 60.0
    (watch,) = settings.watches
    assert watch.path == tmp_path / "docs"
    assert watch.mode is Mode.POLL
    assert watch.settle_seconds == 2.0
    assert watch.include == ("*.pdf",)
    assert settings.extract.workers == 3
    assert settings.extract.limits.max_file_bytes == 10 * 1024 * 1024
    assert settings.extract.limits.timeout_seconds == 30.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.rescan_interval = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[[watch]]\npath = 'docs'\nmode = 'inotify'", "watch[0].mode", "must be one of"),
        ("[[watch]]\npath = 'docs'\nsettle = 3", "watch[0].settle", "unknown key"),
        ("[[watch]]\npath = 'docs'\npoll_interval = 'fast'", "watch[0].poll_interval", "number"),
        ("[[watch]]\npath = 'nope'", "watch[0].path", "does not exist"),
        ("[[watch]]\npath = 'docs'\n[extract]\nworkers = 0", "extract.workers", "at least 1"),
        ("[[watch]]\npath = 'docs'\n[extract]\nworkers = true", "extract.workers", "integer"),
        ("[[watch]]\npath = 'docs'\n[provider]\napi_key = 'sk-1'", "provider", "unknown key"),
        ("[[watch]]\npath = 'docs'\napi_key = 'sk-1'", "watch[0].api_key", "secrets are never"),
        ("colour = 'blue'\n[[watch]]\npath = 'docs'", "colour", "unknown key"),
        ("[log]\nlevel = 'loud'\n[[watch]]\npath = 'docs'", "log.level", "must be"),
        ("state_dir = 3\n[[watch]]\npath = 'docs'", "state_dir", "string"),
        ("", "watch", "at least one"),
        ("[[watch]]\npath = 'docs'\n[task]\nprovider = 'gpt'", "task.provider", "must be one of"),
        (
            "[[watch]]\npath = 'docs'\n[task]\nmax_highlights = 2",
            "task.max_highlights",
            "at least 3",
        ),
        (
            "[[watch]]\npath = 'docs'\n[batch]\nmax_requests = 100001",
            "batch.max_requests",
            "at most 100000",
        ),
        ("[[watch]]\npath = 'docs'\n[batch]\nmax_mb = 300", "batch.max_mb", "at most 256"),
        ("[[watch]]\npath = 'docs'\n[task]\nprompt = 'Say {who}'", "task.prompt", "placeholder"),
        ("[[watch]]\npath = 'docs'\n[task]\nprompt = 'Say {'", "task.prompt", "template"),
        (
            "[[watch]]\npath = 'docs'\n[task]\nprovider = 'anthropic'\nmodel = 'claude-x'",
            "task.model",
            "has no price",
        ),
        (
            "[[watch]]\npath = 'docs'\n[anthropic]\nbase_url = 'ftp://x'",
            "anthropic.base_url",
            "http",
        ),
        ("[[watch]]\npath = 'docs'\n[anthropic]\napi_key = 'sk'", "anthropic.api_key", "secrets"),
        ("[[watch]]\npath = 'docs'\n[budget]\ndaily_usd = -1", "budget.daily_usd", "at least 0"),
        (
            "[[watch]]\npath = 'docs'\n[costs.models.m]\ninput = 1\nouput = 2",
            "costs.models.m.ouput",
            "unknown key",
        ),
        ("[[watch]]\npath = 'docs'\n[batch]\nmax_wait = -1", "batch.max_wait", "at least 0"),
        (
            "[[watch]]\npath = 'docs'\n[sidecars]\nsummary_suffix = 'md'",
            "sidecars.summary_suffix",
            "start with '.'",
        ),
        (
            "[[watch]]\npath = 'docs'\n[sidecars]\njson_suffix = '.summary.md'",
            "sidecars.json_suffix",
            "must differ",
        ),
        (
            "[[watch]]\npath = 'docs'\n[sidecars]\noutput_dir = 'nope'",
            "sidecars.output_dir",
            "does not exist",
        ),
    ],
)
def test_bad_config_names_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    (tmp_path / "docs").mkdir()
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text))
    assert info.value.key == key
    assert reason in info.value.reason


def test_task_fingerprint_changes_with_the_prompt(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    one = config.load(write(tmp_path, "[[watch]]\npath = 'docs'"))
    two = config.load(write(tmp_path, "[[watch]]\npath = 'docs'\n[task]\nprompt = 'Be brief.'"))
    assert one.task.fingerprint != two.task.fingerprint
    assert (
        one.task.fingerprint
        == config.load(write(tmp_path, "[[watch]]\npath = 'docs'")).task.fingerprint
    )
    assert [w.ignore_suffixes for w in one.watches] == [(".summary.md", ".docproc.json")]


def test_secret_value_never_in_error(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, "api_key = 'sk-ant-SECRET'\n[[watch]]\npath = 'docs'"))
    assert "SECRET" not in str(info.value)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[[watch]\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "absent.toml")


def test_file_instead_of_folder(tmp_path: Path) -> None:
    (tmp_path / "docs").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        config.load(write(tmp_path, "[[watch]]\npath = 'docs'"))


def test_state_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "docs").mkdir()
    path = write(tmp_path, "state_dir = 'from-file'\n[[watch]]\npath = 'docs'")
    assert config.load(path).state_dir == tmp_path / "from-file"
    monkeypatch.setenv("DOCPROC_STATE_DIR", str(tmp_path / "from-env"))
    assert config.load(path).state_dir == tmp_path / "from-env"
    assert config.load(path, state_dir=tmp_path / "flag").state_dir == tmp_path / "flag"


def test_default_state_dir_follows_systemd_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "sd"))
    assert config.load(None, watches_required=False).state_dir == tmp_path / "sd"
    monkeypatch.delenv("STATE_DIRECTORY")
    assert config.load(None, watches_required=False).state_dir == tmp_path / "xdg-state" / "docproc"


def test_embedded_default_watches_inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = config.load(None)
    assert [w.path for w in settings.watches] == [tmp_path / "inbox"]
    assert (tmp_path / "inbox").is_dir()


def test_example_config_is_valid_and_documents_every_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = EXAMPLE.read_text()
    (tmp_path / "inbox").mkdir()
    settings = config.load(write(tmp_path, text.replace('"examples/inbox"', '"inbox"')))
    assert settings.watches
    for key in ("state_dir", "rescan_interval", "settle_seconds", "summary_suffix", "mode",
                "poll_interval", "recursive", "include", "exclude", "hidden", "workers",
                "timeout_seconds", "max_file_mb", "max_chars", "max_expansion_ratio",
                "max_archive_mb", "recycle_after", "memory_limit_mb", "max_attempts", "level",
                "format", "provider", "model", "prompt", "max_tokens", "summary_sentences",
                "max_highlights", "max_requests", "max_mb", "max_wait", "max_in_flight",
                "poll_interval", "json_suffix", "output_dir", "delete_with_source",
                "max_input_chars", "retry_backoff", "base_url", "timeout", "batch_discount",
                "cache_write_multiplier", "cache_read_multiplier", "input", "output",
                "daily_usd", "monthly_usd",
                "s3", "endpoint_url", "region", "profile", "interval", "sqs_queue_url",
                "sqs_wait_seconds", "output_prefix", "listen", "role_arn", "staging",
                "timeout_hours", "min_records", "max_records", "max_concurrent_jobs",
                "invocation_type", "below_minimum", "live_concurrency", "live_timeout",
                "keep_staging", "max_file_records", "max_job_mb", "runtime_endpoint_url",
                "s3_endpoint_url", "project", "location", "api_endpoint", "storage_endpoint",
                "access_token_file", "structured"):  # fmt: skip
        assert f"{key} =" in text, key


def test_secret_from_env_then_credentials_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCPROC_TEST_KEY", raising=False)
    assert config.secret("DOCPROC_TEST_KEY") is None
    (tmp_path / "DOCPROC_TEST_KEY").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert config.secret("DOCPROC_TEST_KEY") == "from-credential"
    monkeypatch.setenv("DOCPROC_TEST_KEY", "from-env")
    assert config.secret("DOCPROC_TEST_KEY") == "from-env"


def test_max_wait_default_follows_the_provider(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    assert config.load(write(tmp_path, "[[watch]]\npath = 'docs'")).batch.max_wait == 2.0
    explicit = config.load(write(tmp_path, "[[watch]]\npath = 'docs'\n[batch]\nmax_wait = 60"))
    assert explicit.batch.max_wait == 60.0
    assert config.REMOTE_MAX_WAIT == 900.0


def test_anthropic_settings_prices_budget_and_base_url_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "docs").mkdir()
    text = """
[task]
provider = "anthropic"
model = "claude-next"
prompt = "In {summary_sentences} sentences, {{braces}} kept."
[costs.models."claude-next"]
input = 4
output = 20
[budget]
daily_usd = 5
"""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/gateway")
    settings = config.load(write(tmp_path, text + "[[watch]]\npath = 'docs'"))
    assert settings.anthropic.base_url == "http://127.0.0.1:9/gateway"
    assert settings.prices.prices["claude-next"].output == 20.0
    assert settings.prices.knows("claude-sonnet-4-5")  # built-in prices stay
    assert settings.budget.daily_usd == 5.0 and settings.budget.capped
    assert settings.poll_interval == config.REMOTE_POLL_INTERVAL
    assert settings.task.model == "claude-next"
    explicit = text + "[anthropic]\nbase_url = 'https://gw.example'\n[[watch]]\npath = 'docs'"
    assert config.load(write(tmp_path, explicit)).anthropic.base_url == "https://gw.example"


def test_anthropic_key_comes_only_from_env_or_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="LoadCredential") as raised:
        config.anthropic_key()
    assert raised.value.key == "task.provider"
    (tmp_path / "ANTHROPIC_API_KEY").write_text("sk-cred\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert config.anthropic_key() == "sk-cred"


def test_new_task_fields_at_their_default_keep_old_fingerprints() -> None:
    from docproc.models import TaskSpec

    spec = TaskSpec()
    assert spec.fingerprint == dataclasses.replace(spec, max_input_chars=400_000).fingerprint
    assert spec.fingerprint != dataclasses.replace(spec, max_input_chars=1000).fingerprint


def test_s3_watch_beside_a_folder(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    settings = config.load(write(tmp_path, """
[[watch]]
path = "docs"
[[watch]]
s3 = "s3://reports-bucket/in coming"
endpoint_url = "http://127.0.0.1:9000"
region = "eu-west-1"
profile = "docproc"
interval = 30
sqs_queue_url = "http://127.0.0.1:9000/123/q"
sqs_wait_seconds = 2
output_prefix = "s3://other-bucket/sum"
exclude = ["drafts/**"]
"""))  # fmt: skip
    (spec,) = settings.s3_watches
    assert (spec.bucket, spec.prefix, spec.interval) == ("reports-bucket", "in coming/", 30.0)
    assert spec.uri == "s3://reports-bucket/in%20coming/"
    assert spec.output_prefix == "s3://other-bucket/sum/"
    assert spec.sqs_wait_seconds == 2 and spec.exclude == ("drafts/**",)
    assert len(settings.watches) == 1


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ('s3 = "s3://bkt/x/"\naws_access_key_id = "AKIA"', "watch[0].aws_access_key_id",
         "never read from the config file"),
        ('s3 = "s3://bkt/x/"\naws_secret_access_key = "x"', "watch[0].aws_secret_access_key",
         "boto3 finds them"),
        ('s3 = "bkt/x/"', "watch[0].s3", "must look like s3://"),
        ('s3 = "s3://Bad_Bucket/x/"', "watch[0].s3", "not a valid bucket name"),
        ('s3 = "s3://bkt/x/"\npath = "docs"', "watch[0].path", "folders only"),
        ('s3 = "s3://bkt/x/"\nmode = "poll"', "watch[0].mode", "folders only"),
        ('path = "docs"\nendpoint_url = "http://x"', "watch[0].endpoint_url", "S3 watches only"),
        ('s3 = "s3://bkt/x/"\nendpoint_url = "ftp://x"', "watch[0].endpoint_url", "http://"),
        ('s3 = "s3://bkt/x/"\nsqs_wait_seconds = 30', "watch[0].sqs_wait_seconds", "at most 20"),
        ('s3 = "s3://bkt/x/"\n[[watch]]\ns3 = "s3://bkt/x"', "watch[1].s3", "watched twice"),
    ],
)  # fmt: skip
def test_bad_s3_watches_are_refused_with_the_key(
    tmp_path: Path, body: str, key: str, words: str
) -> None:
    (tmp_path / "docs").mkdir()
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, "[[watch]]\n" + body + "\n"))
    assert info.value.key == key
    assert words in info.value.reason


BEDROCK = """
[[watch]]
path = "docs"
[task]
provider = "bedrock"
model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
[bedrock]
region = "eu-west-1"
role_arn = "arn:aws:iam::123456789012:role/service-role/docproc-batch"
staging = "s3://docproc-staging/batches"
"""


def test_bedrock_settings_with_their_defaults(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    settings = config.load(write(tmp_path, BEDROCK))
    bedrock = settings.bedrock
    assert bedrock is not None and settings.task.provider == "bedrock"
    assert bedrock.staging == "s3://docproc-staging/batches/"
    assert (bedrock.timeout_hours, bedrock.min_records, bedrock.max_records) == (24, 100, 50_000)
    assert (bedrock.below_minimum, bedrock.invocation_type) == ("live", "InvokeModel")
    assert settings.poll_interval == 30.0 and settings.batch.max_wait == 900.0
    local = config.load(write(tmp_path, '[[watch]]\npath = "docs"\n'))
    assert local.bedrock is None


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (
            (
                'role_arn = "arn:aws:iam::123456789012:role/service-role/docproc-batch"',
                'role_arn = "docproc-batch"',
            ),
            "bedrock.role_arn",
            "an IAM role ARN",
        ),
        (
            (
                'role_arn = "arn:aws:iam::123456789012:role/service-role/docproc-batch"',
                'role_arn = "arn:aws:iam::123:user/bob"',
            ),
            "bedrock.role_arn",
            "an IAM role ARN",
        ),
        (
            (
                'staging = "s3://docproc-staging/batches"',
                'staging = "s3://docproc-staging/my batches/"',
            ),
            "bedrock.staging",
            "refuses",
        ),
        (
            ('staging = "s3://docproc-staging/batches"', 'staging = "s3://docproc-staging/a=b/"'),
            "bedrock.staging",
            "refuses",
        ),
        (
            ('staging = "s3://docproc-staging/batches"', 'staging = "https://example.com/x"'),
            "bedrock.staging",
            "s3://bucket/prefix/",
        ),
        (('staging = "s3://docproc-staging/batches"\n', ""), "bedrock.staging", "required"),
        (
            ('region = "eu-west-1"\n', 'region = "eu-west-1"\ntimeout_hours = 12\n'),
            "bedrock.timeout_hours",
            "at least 24",
        ),
        (
            ('region = "eu-west-1"\n', 'region = "eu-west-1"\ntimeout_hours = 200\n'),
            "bedrock.timeout_hours",
            "between 24 and 168",
        ),
        (
            (
                'region = "eu-west-1"\n',
                'region = "eu-west-1"\nmin_records = 500\nmax_records = 100\n',
            ),
            "bedrock.max_records",
            "at least min_records",
        ),
        (
            ('region = "eu-west-1"\n', 'region = "eu-west-1"\nmax_concurrent_jobs = 0\n'),
            "bedrock.max_concurrent_jobs",
            "at least 1",
        ),
        (
            ('region = "eu-west-1"\n', 'region = "eu-west-1"\ninvocation_type = "Chat"\n'),
            "bedrock.invocation_type",
            "InvokeModel, Converse",
        ),
        (
            ('region = "eu-west-1"\n', 'region = "eu-west-1"\nbelow_minimum = "drop"\n'),
            "bedrock.below_minimum",
            "live, wait",
        ),
        (
            ('region = "eu-west-1"\n', 'region = "eu-west-1"\naws_secret_access_key = "x"\n'),
            "bedrock.aws_secret_access_key",
            "never read from the config file",
        ),
        (('region = "eu-west-1"\n', ""), "bedrock.region", "required"),
        (
            (
                'model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"',
                'model = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/'
                'a1b2c3d4e5f6"',
            ),
            "task.model",
            "has no price",
        ),
        (
            ('model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"\n', ""),
            "task.model",
            "required for provider 'bedrock'",
        ),
    ],
)
def test_bad_bedrock_settings_are_refused_with_the_key(
    tmp_path: Path, change: tuple[str, str], key: str, reason: str
) -> None:
    (tmp_path / "docs").mkdir()
    assert change[0] in BEDROCK
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, BEDROCK.replace(*change)))
    assert info.value.key == key and reason in info.value.reason, str(info.value)


def test_bedrock_without_its_table_is_refused(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    text = BEDROCK.split("[bedrock]")[0]
    with pytest.raises(ConfigError, match=r"bedrock\.region: is required"):
        config.load(write(tmp_path, text))
