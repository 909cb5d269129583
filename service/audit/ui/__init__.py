"""The audit UI: server-rendered pages for auditors."""
