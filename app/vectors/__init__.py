"""Everything Milvus: row types, the call wrapper, the collection store, connections, the
local Lite server."""
