"""The core: configuration, errors, payloads, phone numbers, JSON logs. Imports nothing of ours."""
