"""Application services: the repository, command handlers, hand-overs and queries."""
