"""The local target's runtime: the trainer, the content-addressed artifact store and the
machine inventory that the local dynamic providers (`components/local/`) drive."""
