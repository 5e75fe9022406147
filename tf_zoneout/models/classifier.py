"""Sequence classifier: recurrent layers over [B, T, F] inputs, softmax on the last output."""

from __future__ import annotations

import dataclasses

import keras

from tf_zoneout.models.recurrent import RecurrentSpec, make_recurrent_layer


class SequenceClassifier(keras.Model):
    """E.g. (permuted) sequential MNIST: 784 steps of one pixel -> 10 classes.

    Args:
        num_classes: output classes C.
        recurrent: the recurrent layers' description (``cell="bn_lstm"`` for recurrent
            batch normalization).
        num_layers: stacked recurrent layers.
        seed: seeds initializers and masks.

    Call: ``model(x [B, T, F], training)`` -> logits [B, C].
    """

    def __init__(self, num_classes, recurrent: RecurrentSpec, num_layers=1, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.recurrent = recurrent
        self.num_layers = num_layers
        self.seed = seed
        self.rnn_layers = [
            make_recurrent_layer(
                recurrent,
                seed + 10 * k,
                return_sequences=k < num_layers - 1,
                return_state=False,
                name=f"rnn_{k}",
            )
            for k in range(num_layers)
        ]
        self.readout = keras.layers.Dense(
            num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed + 5), name="readout"
        )

    def call(self, x, training=False):
        for layer in self.rnn_layers:
            x = layer(x, training=training)
        return self.readout(x)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "recurrent": dataclasses.asdict(self.recurrent),
            "num_layers": self.num_layers,
            "seed": self.seed,
        }
