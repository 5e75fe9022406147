"""The zoneout model service: FastAPI app over exported SavedModels (``tf_zoneout_serve.app:app``)."""
