"""The SavedModel format of tf-zoneout's exports, apart from the zoneout library: each signature's
inputs and outputs (``signatures``), the model base layout and metadata (``model_base``), the graph
checks (``export_graph``), in-graph tokenization (``text_codec``) and sampling (``sampling``), and
JSON files written whole (``json_files``). ``tf_zoneout.export`` writes exports in it; the service
reads them through it.
"""
