"""The serve process: uvicorn set-up, HTTP limits, the projector child, the ASGI entry points."""
