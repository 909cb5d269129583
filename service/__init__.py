"""mightycall-ingest: MightyCall webhooks into an immutable PostgreSQL event log."""
