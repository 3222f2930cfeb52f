"""Google Cloud over REST: no Google SDK beyond google-auth, no second HTTP stack.

* :mod:`.auth`: bearer tokens (Application Default Credentials through
  google-auth, or a token file); the only module importing google-auth;
* :mod:`.http`: the httpx client, authenticated; the only module of this
  package importing httpx;
* :mod:`.storage`: a Cloud Storage prefix as a staged batch's object store;
* :mod:`.vertex`: Vertex AI's batch prediction jobs.

The modules are imported only when the ``vertex`` provider is configured
(:mod:`docproc.compose`).
"""
