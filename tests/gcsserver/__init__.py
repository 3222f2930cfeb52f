"""A Cloud Storage test server: the JSON API over HTTP on loopback, objects on disk.

``FakeGcs`` runs a threaded HTTP server on 127.0.0.1 answering the routes a
client of staged batches needs (multipart and media uploads honouring
``ifGenerationMatch``, object resources, streamed downloads, paginated
listings, deletes), with call faults (429, 500, 503, dropped connections) on
request. Its :class:`GcsStore` is shared with the Vertex AI test server,
whose jobs read their input from it and write their output to it, as Vertex's
service agent does. ``unconditional`` lists uploads made without
``ifGenerationMatch=0`` (docproc never replaces an object).

(PyPI's gcp-storage-emulator was considered: it has no ``ifGenerationMatch``.)
"""

from tests.gcsserver.faults import CallFaults
from tests.gcsserver.server import FakeGcs
from tests.gcsserver.store import GcsStore, StoreError

__all__ = ["CallFaults", "FakeGcs", "GcsStore", "StoreError"]
