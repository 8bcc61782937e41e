"""The write path's application services: the repository (load, decide, append with
optimistic concurrency, snapshots), the game's command handlers, hand-overs between streams,
the item audit, and what players read of their own commands (narration, tracking)."""
