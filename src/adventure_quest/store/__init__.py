"""The event store: its port, the envelope, the shared append rules, the codec (upcasting),
sharding, and its adapters: memory, SQLite (``store/sqlite/``) and PostgreSQL
(``store/postgres/``), each with its snapshot and checkpoint stores."""
