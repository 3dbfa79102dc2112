"""The Redis layer: an embedded server by default, the plant's pipelined write
path, the key schema and the consumer API (docs/redis.md)."""
