"""The processing path's loops: the relay (a shard's log to the queue), the projection worker
(the queue to the read models), the process managers (achievements, hand-overs, respawns), the
world clock, partition leases, and lag status."""
