"""``zoneout serve --model-base DIR [--host 127.0.0.1] [--port 8000] [--tf-serving HOST:PORT]``."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="serve the models under a model base over HTTP (FastAPI)")
    parser.add_argument("--model-base", type=Path, required=True, help="MODEL_BASE/NAME/VERSION/ SavedModels")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--tf-serving", help="HOST:PORT of TF Serving's gRPC API (default: run models in-process)"
    )
    parser.add_argument("--no-batching", action="store_true", help="one request per model call")
    parser.set_defaults(run=run)


def run(args) -> int:
    try:
        import uvicorn
    except ImportError:
        print("zoneout serve needs the service extras: pip install -e '.[serve]'")
        return 1
    from tf_zoneout_serve.app import create_app
    from tf_zoneout_serve.auth import exposure_warning
    from tf_zoneout_serve.settings import Settings

    flags = {"model_base": args.model_base.resolve()}  # the flags; every other setting from ZONEOUT_*
    if args.tf_serving:
        flags["tf_serving"] = args.tf_serving
    if args.no_batching:
        flags["batching"] = False
    try:
        app = create_app(Settings(**flags))
    except ValueError as error:  # e.g. an unreadable ZONEOUT_API_KEYS file (never a key in the message)
        print(f"zoneout serve: error: {error}", file=sys.stderr)
        return 2
    warning = exposure_warning(args.host, app.state.api_keys)
    if warning:
        print(warning, file=sys.stderr, flush=True)

    print(
        f"playground: http://{args.host}:{args.port}/   API docs: http://{args.host}:{args.port}/docs",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
