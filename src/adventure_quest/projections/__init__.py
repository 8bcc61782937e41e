"""The read path: projection runner, read models, read-database adapters."""
