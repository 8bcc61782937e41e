"""The message queue: its port (partitioned by aggregate id, consumer groups, at-least-once
with de-duplication by event id) and its adapters, in-process and NATS JetStream."""
