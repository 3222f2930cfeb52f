"""Vertex AI batch prediction jobs over REST (reference/BATCH_APIS.md §5).

Thin on purpose: each method is one call of ``projects.locations.batchPredictionJobs``
(create, get, list, cancel); what a job means is in :mod:`docproc.providers.vertex`.
Every failure becomes a provider error of :mod:`docproc.errors`, by what the
caller can do about it:

* ``ProviderRetryable``: 429 ``RESOURCE_EXHAUSTED`` (the quota of concurrent
  jobs: backoff, not failure), 5xx, 408, the network;
* ``ProviderAccountRefused``: 401 (after a fresh token was refused too) and
  403 (``PERMISSION_DENIED``: a missing role, the API not enabled), and a
  create refused as invalid or naming an unknown model: the configuration's
  fault, so submission pauses and no document is quarantined;
* ``ProviderRejected``: an unknown job, a cancel of a job that has ended;
* ``ProviderOutcomeUnknown``: a create that may have been made (no answer after
  the request was sent, a 5xx). Create has no idempotency key: the caller
  finds the job by its label before creating again, and nothing here retries.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from docproc.errors import (
    ProviderAccountRefused,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderRetryable,
)
from docproc.gcp.http import GoogleHttp, Reply, Unreached, error_of, retry_after

LIST_PAGE = 100
LIST_MAX_PAGES = 50
JOB_NAME_PARTS = 6  # projects/{p}/locations/{l}/batchPredictionJobs/{id}


class VertexJobs:
    """The batch prediction jobs of one project and location.

    Args:
        http: an authenticated client.
        endpoint: ``https://<location>-aiplatform.googleapis.com`` (or another root).
    """

    def __init__(self, http: GoogleHttp, *, endpoint: str, project: str, location: str) -> None:
        self.http = http
        self.endpoint = endpoint.rstrip("/")
        self.parent = f"projects/{project}/locations/{location}"

    def __repr__(self) -> str:
        return f"VertexJobs({self.parent!r}, endpoint={self.endpoint!r})"

    def create_job(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a job; the job as Vertex describes it (its ``name`` is its id)."""
        doing = f"create job {body.get('displayName')}"
        url = f"{self.endpoint}/v1/{self.parent}/batchPredictionJobs"
        try:
            reply = self.http.call("POST", url, body=dict(body))
        except Unreached as exc:
            kind = ProviderOutcomeUnknown if exc.sent else ProviderRetryable
            raise kind(f"cannot {doing}: {exc}") from exc
        if reply.status >= 500:
            raise ProviderOutcomeUnknown(_message(reply, doing))  # it may exist: find it
        if reply.status in (400, 404):  # made of the configuration alone
            raise ProviderAccountRefused(
                f"{_message(reply, doing)} (check [vertex] and [task] model)"
            )
        job = self._answer(reply, doing)
        if not isinstance(job.get("name"), str) or not job["name"]:
            raise ProviderOutcomeUnknown(f"cannot {doing}: the answer names no job")
        return job

    def get_job(self, name: str) -> dict[str, Any]:
        return self._answer(self._call("GET", self._url(name), f"get job {name}"),
                            f"get job {name}")  # fmt: skip

    def list_jobs(self, filter_: str) -> Iterator[dict[str, Any]]:
        """The jobs matching a filter (``labels.docproc_batch="..."``), every page."""
        url = f"{self.endpoint}/v1/{self.parent}/batchPredictionJobs"
        params = {"filter": filter_, "pageSize": str(LIST_PAGE)}
        for _ in range(LIST_MAX_PAGES):
            doing = f"list jobs ({filter_})"
            page = self._answer(self._call("GET", url, doing, params=params), doing)
            yield from (job for job in page.get("batchPredictionJobs") or () if
                        isinstance(job, dict))  # fmt: skip
            token = page.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = str(token)

    def cancel_job(self, name: str) -> None:
        """Ask Vertex to cancel a job (best effort: it goes CANCELLING, then CANCELLED)."""
        doing = f"cancel job {name}"
        self._answer(self._call("POST", self._url(name) + ":cancel", doing, body={}), doing)

    # -- calls -----------------------------------------------------------------------

    def _url(self, name: str) -> str:
        parts = name.split("/")
        if (len(parts) != JOB_NAME_PARTS or parts[0] != "projects" or parts[4] !=
                "batchPredictionJobs" or not all(parts)):  # fmt: skip
            raise ProviderRejected(f"not a Vertex batch prediction job: {name[:200]!r}")
        return f"{self.endpoint}/v1/{quote(name, safe='/')}"

    def _call(
        self, method: str, url: str, doing: str, *, params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Reply:  # fmt: skip
        try:
            return self.http.call(method, url, params=params, body=body)
        except Unreached as exc:
            raise ProviderRetryable(f"cannot {doing}: {exc}") from exc

    @staticmethod
    def _answer(reply: Reply, doing: str) -> dict[str, Any]:
        if reply.status != 200:
            raise _failure(reply, doing)
        data = reply.json()
        if not isinstance(data, dict):
            raise ProviderRetryable(f"cannot {doing}: the answer is not a JSON object")
        return data


def _failure(reply: Reply, doing: str) -> ProviderError:
    message = _message(reply, doing)
    status, _ = error_of(reply)
    if reply.status in (401, 403) or status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return ProviderAccountRefused(message)
    if reply.status in (408, 429) or reply.status >= 500:
        return ProviderRetryable(message, retry_after=retry_after(reply))
    return ProviderRejected(message)


def _message(reply: Reply, doing: str) -> str:
    status, message = error_of(reply)
    return f"cannot {doing}: HTTP {reply.status} {status}: {message}".replace("  ", " ")
