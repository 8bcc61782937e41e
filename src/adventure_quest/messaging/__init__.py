"""The processing path: the queue port, its adapters (in-process, NATS JetStream), the relay."""
