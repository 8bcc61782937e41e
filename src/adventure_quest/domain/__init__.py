"""Pure game rules: the world, aggregates (Player, Room), commands and events. No I/O."""
