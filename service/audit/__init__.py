"""The read-only audit API, its queries, the event trace and the browser UI."""
