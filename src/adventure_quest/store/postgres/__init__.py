"""The PostgreSQL adapters: the event store (batched appends through ``aq_append``,
LISTEN/NOTIFY), connections and migrations, snapshots and relay checkpoints, per shard."""
