"""Providers: the seam between docproc and whoever writes summaries.

``base`` holds the :class:`~docproc.providers.base.Provider` protocol and the
custom_id codec; ``local`` is the embedded offline provider, built on the
stdlib-only extractive summariser in ``summarize``; ``anthropic`` speaks
Message Batches (``messages``: Claude's request and answer shapes).

Platforms whose batches are staged in an object store share one provider,
``staged.StagedBatchProvider``, given three parts (``staging``: an object
store, a job API, a record codec) and optionally a live API for batches below
the platform's minimum (``live``). ``bedrock`` and ``bedrock_records`` are
Bedrock's parts; a new platform (Vertex AI: a GCS store, the
batchPredictionJobs API, its JSONL shapes) adds its own and nothing else.
Structured output comes through a forced tool or, where a platform takes no
tools, JSON asked for in the prompt (``jsonanswer``).
"""
