"""The HTTP command and query API (Litestar), its auth, caching and notifications."""
