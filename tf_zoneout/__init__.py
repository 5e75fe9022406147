"""tf_zoneout: zoneout (Krueger et al., ICLR 2017) for TensorFlow 2 / Keras 3.

import tf_zoneout as tz
layer = tz.ZoneoutLSTM(1000, zoneout_cells=0.5, zoneout_states=0.05)
"""

from tf_zoneout.batchnorm import RecurrentBatchNormLSTM
from tf_zoneout.cells import ZoneoutGRUCell, ZoneoutLSTMCell, ZoneoutSimpleRNNCell
from tf_zoneout.layers import ZoneoutGRU, ZoneoutLSTM, ZoneoutSimpleRNN
from tf_zoneout.wrapper import ZoneoutWrapper
from tf_zoneout.zoneout import zoneout

__version__ = "0.2.0"  # the one place the version is written (pyproject.toml and the service read it)

__all__ = [
    "RecurrentBatchNormLSTM",
    "ZoneoutGRU",
    "ZoneoutGRUCell",
    "ZoneoutLSTM",
    "ZoneoutLSTMCell",
    "ZoneoutSimpleRNN",
    "ZoneoutSimpleRNNCell",
    "ZoneoutWrapper",
    "zoneout",
]
