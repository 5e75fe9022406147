"""A clean terminal: TensorFlow's start-up noise kept out of the user's console.

Importing TensorFlow prints C++ and absl log lines to the process's standard error before
``TF_CPP_MIN_LOG_LEVEL`` takes effect (the absl preamble, oneDNN and CPU-feature notes, CUDA
probing on a machine without a GPU, printed at the first device discovery).
``import_tensorflow_quietly`` captures file descriptor 2 during the import and the device
discovery and writes back only what is not such noise, so real errors still show.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

# Start-up lines that say nothing is wrong (matched anywhere in the line).
NOISE = tuple(
    re.compile(pattern)
    for pattern in (
        r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
        r"^[IW]\d{4} ",  # absl-format INFO and WARNING lines
        r"failed call to cuInit",
        r"Could not find cuda drivers",
        r"Unable to register cu(DNN|FFT|BLAS) factory",
        r"oneDNN custom operations are on",
        r"This TensorFlow binary is optimized to use available CPU instructions",
        r"To enable the following instructions:",
        r"computation placer already registered",
        r"TF-TRT Warning",
    )
)


def is_noise(line: str) -> bool:
    return not line.strip() or any(pattern.search(line) for pattern in NOISE)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its start-up noise filtered out of standard error (once per process)."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            # Device discovery probes CUDA ("failed call to cuInit" on a machine without a GPU):
            # do it here too, or the probe prints in the middle of the run's own output. Listing
            # physical devices does not start the runtime (strategies and logical devices can
            # still be configured afterwards).
            devices = tensorflow.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line for line in captured.read().decode("utf-8", "replace").splitlines() if not is_noise(line)
            ]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()
    # TensorFlow's own warning about an unusable GPU is among the noise filtered above: say it clearly.
    from tf_zoneout_train.gpu_readiness import warn_if_unusable

    warn_if_unusable(lambda: [d for d in devices if d.device_type == "GPU"])
