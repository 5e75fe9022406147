"""The zoneout model service: FastAPI app over exported SavedModels (``serve.app:app``)."""
