"""The encoder and everything that serves it: preprocessing, projection head, attention,
allocator, batching, the model thread."""
