"""Ids of the meta collection's records that are read without Chroma's client too (see store.py, and the
no-op check in ingest_state.py, which asks a Chroma server for them over its HTTP API)."""

#: The record whose document is the live manifest.
POINTER_ID = "active"
#: Present while chunks may exist that no manifest names (a run wrote some and has not yet collected garbage):
#: without it and without retired versions, garbage collection has nothing to look for.
GARBAGE_OWED_ID = "garbage-owed"
