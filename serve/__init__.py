"""The zoneout model service: a FastAPI app over exported SavedModels
(``uvicorn --factory tf_zoneout_serve.app:create_app``, or ``zoneout serve``)."""
