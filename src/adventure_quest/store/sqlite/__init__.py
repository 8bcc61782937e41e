"""The SQLite adapters: the event store (one writer thread, group commit), its schema and
migrations, snapshots and relay checkpoints, all in one database file per shard."""
