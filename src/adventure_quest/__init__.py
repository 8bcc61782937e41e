"""Adventure Quest: a multiplayer text-adventure game server built on event sourcing and CQRS."""

__version__ = "0.1.0"
