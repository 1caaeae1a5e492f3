"""rstq durable core: log, partition processor, invoker, ingress, admin, server."""
