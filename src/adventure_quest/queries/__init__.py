"""The read side, with no HTTP in it: query handlers over the read models (replicas, waiting
for a consistency token), the answer cache (in-process or Redis) and its invalidation,
consistency tokens, and the room feed."""
