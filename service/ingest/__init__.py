"""Ingestion: organizations, rejections, reference data (phone numbers)."""
