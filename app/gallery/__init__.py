"""The gallery's images: decoding and keys, the image store, sources, ingest, and the
store/index check."""
