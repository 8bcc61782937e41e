"""The read models: the projection model, each read model, the runner that applies batches
exactly once in effect, rebuilds, dead letters, and the read-database adapters (SQLite,
PostgreSQL)."""
