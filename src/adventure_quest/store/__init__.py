"""The event store: its port, envelope, adapters (memory, SQLite), snapshots and upcasting."""
