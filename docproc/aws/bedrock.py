"""Amazon Bedrock through boto3: batch inference jobs and live model calls.

Thin on purpose: each method is one API call (reference/BATCH_APIS.md §4.1),
and the meaning of jobs and answers lives in :mod:`docproc.providers.bedrock`.
Every botocore failure is translated here into the provider errors of
:mod:`docproc.errors`, by what the caller can do about it:

* ``ProviderRetryable``: throttling, the quota of jobs in flight
  (``ServiceQuotaExceededException``: backoff, not failure; the dispatcher
  doubles its wait from ``poll_interval``), 5xx, the network;
* ``ProviderAccountRefused``: access denied, no or bad credentials, an
  unknown model or role, a create the service finds invalid (it is made of
  the configuration alone): a configuration to fix, so submission pauses and
  no document is quarantined;
* ``ProviderRejected``: a request the service refuses (``ValidationException``),
  an unknown job;
* ``ProviderOutcomeUnknown``: a create that may have been made (a timeout or a
  dropped connection after the request was sent, a 5xx, a name conflict). The
  create carries the ledger's ``clientRequestToken``, so sending it again
  cannot make a second job; even so the client is built without botocore's
  retries (``compose.make_bedrock``): after an unknown outcome the dispatcher
  first looks the job up by name, then sends the same token again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import botocore.exceptions

from docproc.aws.session import Session
from docproc.errors import (
    ProviderAccountRefused,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderRetryable,
)

LIST_PAGE = 100
LIST_MAX_PAGES = 50
_RETRYABLE = {
    "ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException",
    "ServiceUnavailableException", "InternalServerException", "ModelNotReadyException",
    "ModelTimeoutException", "ModelErrorException", "RequestTimeout", "RequestTimeoutException",
}  # fmt: skip
_REFUSED = {
    "AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException",
    "InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationToken",
    "InvalidClientTokenId", "SignatureDoesNotMatch",
}  # fmt: skip
_NOT_SENT = (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError)
_NETWORK = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.ReadTimeoutError,
)
_SETUP = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.NoRegionError,
    botocore.exceptions.ProfileNotFound,
    botocore.exceptions.PartialCredentialsError,
)


class BedrockJobs:
    """The model-invocation-job operations of the Bedrock control plane."""

    def __init__(self, session: Session) -> None:
        with translated("create a bedrock client"):
            self._client = session.client("bedrock")

    def create_job(self, request: Mapping[str, Any]) -> str:
        """CreateModelInvocationJob; the job's ARN."""
        with translated(f"create job {request.get('jobName')}", create=True):
            response = self._client.create_model_invocation_job(**request)
        arn = response.get("jobArn")
        if not isinstance(arn, str) or not arn:
            raise ProviderOutcomeUnknown("create: the answer has no jobArn")
        return arn

    def get_job(self, identifier: str) -> dict[str, Any]:
        with translated(f"get job {identifier}"):
            return dict(self._client.get_model_invocation_job(jobIdentifier=identifier))

    def list_jobs(self, name_contains: str) -> Iterator[dict[str, Any]]:
        """Summaries of the jobs whose name contains ``name_contains``, newest first."""
        args: dict[str, Any] = {
            "nameContains": name_contains, "maxResults": LIST_PAGE,
            "sortBy": "CreationTime", "sortOrder": "Descending",
        }  # fmt: skip
        for _ in range(LIST_MAX_PAGES):
            with translated(f"list jobs named like {name_contains}"):
                page = self._client.list_model_invocation_jobs(**args)
            yield from page.get("invocationJobSummaries") or ()
            if not page.get("nextToken"):
                return
            args["nextToken"] = page["nextToken"]

    def stop_job(self, identifier: str) -> None:
        with translated(f"stop job {identifier}"):
            self._client.stop_model_invocation_job(jobIdentifier=identifier)


class BedrockRuntime:
    """Live calls (bedrock-runtime): InvokeModel with a JSON body, or Converse."""

    def __init__(self, session: Session) -> None:
        with translated("create a bedrock-runtime client"):
            self._client = session.client("bedrock-runtime")

    def invoke_model(self, model_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """InvokeModel; the decoded JSON answer."""
        with translated(f"invoke {model_id}", live=True):
            response = self._client.invoke_model(
                modelId=model_id, body=json.dumps(body).encode(),
                contentType="application/json", accept="application/json",
            )  # fmt: skip
            raw = response["body"].read()
        return _json_object(raw, model_id)

    def converse(self, model_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Converse; the answer as botocore parsed it (without its response metadata)."""
        with translated(f"converse with {model_id}", live=True):
            response = dict(self._client.converse(modelId=model_id, **params))
        response.pop("ResponseMetadata", None)
        return response


@contextmanager
def translated(doing: str, *, create: bool = False, live: bool = False) -> Iterator[None]:
    """Turn botocore's exceptions into docproc's provider errors, ``from`` the original.

    ``create``: a failure after the request may have been sent is an unknown
    outcome. ``live``: an unknown model is the configuration's fault.
    """
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        raise _client_error(doing, exc, create=create, live=live) from exc
    except _NOT_SENT as exc:
        raise ProviderRetryable(f"cannot {doing}: cannot connect: {exc}") from exc
    except _NETWORK as exc:
        kind = ProviderOutcomeUnknown if create else ProviderRetryable
        raise kind(f"cannot {doing}: {type(exc).__name__}: {exc}") from exc
    except _SETUP as exc:
        raise ProviderAccountRefused(f"cannot {doing}: {exc}") from exc
    except botocore.exceptions.ParamValidationError as exc:
        raise ProviderRejected(f"cannot {doing}: {exc}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        kind = ProviderOutcomeUnknown if create else ProviderRetryable
        raise kind(f"cannot {doing}: {exc}") from exc


def _client_error(
    doing: str, exc: botocore.exceptions.ClientError, *, create: bool, live: bool
) -> ProviderError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    message = f"cannot {doing}: {code or status}: {str(error.get('Message', ''))[:500]}"
    if code in _REFUSED or status in (401, 403):
        return ProviderAccountRefused(message)
    if code == "ResourceNotFoundException" and (create or live):
        return ProviderAccountRefused(f"{message} (check the model id and role_arn)")
    if code == "ValidationException" and create:  # built from the configuration alone
        return ProviderAccountRefused(f"{message} (check [bedrock] and [task] model)")
    if create and (code == "ConflictException" or status >= 500):
        return ProviderOutcomeUnknown(message)  # the job may exist: find it by name
    if code in _RETRYABLE or status == 429 or status >= 500:
        return ProviderRetryable(message)
    return ProviderRejected(message)


def _json_object(raw: bytes, model_id: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ProviderRetryable(f"{model_id}: the answer is not JSON") from exc
    if not isinstance(data, dict):
        raise ProviderRetryable(f"{model_id}: the answer is not a JSON object")
    return data
