"""Encoder-decoder over symbol sequences (the paper's toy addition task), greedy decoding."""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tf_zoneout.models.recurrent import RecurrentSpec, make_recurrent_layer, num_states


def _uniform(seed):
    return keras.initializers.RandomUniform(-0.05, 0.05, seed=seed)


class Seq2Seq(keras.Model):
    """Stacked-RNN encoder whose final states start a stacked-RNN decoder.

    Args:
        num_symbols: size S of the shared symbol alphabet (problems and answers).
        embedding_dim: symbol embedding size.
        recurrent: description of every recurrent layer (encoder and decoder).
        num_layers: layers in the encoder and in the decoder.
        seed: seeds initializers and masks.

    Call: ``model((problems [B, P], decoder_inputs [B, A]), training)`` -> logits [B, A, S]
    (teacher forcing: ``decoder_inputs`` is GO followed by the answer shifted right).
    """

    def __init__(self, num_symbols, embedding_dim, recurrent: RecurrentSpec, num_layers=2, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.num_symbols = num_symbols
        self.embedding_dim = embedding_dim
        self.recurrent = recurrent
        self.num_layers = num_layers
        self.seed = seed
        self.encoder_embedding = keras.layers.Embedding(
            num_symbols, embedding_dim, embeddings_initializer=_uniform(seed + 1), name="encoder_embedding"
        )
        self.decoder_embedding = keras.layers.Embedding(
            num_symbols, embedding_dim, embeddings_initializer=_uniform(seed + 2), name="decoder_embedding"
        )
        self.encoder = [
            make_recurrent_layer(recurrent, seed + 10 * k, name=f"encoder_{k}") for k in range(num_layers)
        ]
        self.decoder = [
            make_recurrent_layer(recurrent, seed + 500 + 10 * k, name=f"decoder_{k}")
            for k in range(num_layers)
        ]
        self.readout = keras.layers.Dense(
            num_symbols, kernel_initializer=keras.initializers.GlorotUniform(seed + 3), name="readout"
        )

    def encode(self, problems, training=False) -> list[tf.Tensor]:
        """Final states of every encoder layer (flat list of [B, H])."""
        x = self.encoder_embedding(problems)
        states = []
        for layer in self.encoder:
            outputs = layer(x, training=training)
            x = outputs[0]
            states.extend(outputs[1:])
        return states

    def decode(self, inputs, states, training=False):
        """Logits [B, T, S] for decoder inputs [B, T] from ``states``; returns (logits, states)."""
        x = self.decoder_embedding(inputs)
        per = num_states(self.recurrent.cell)
        new_states = []
        for k, layer in enumerate(self.decoder):
            outputs = layer(x, initial_state=list(states[k * per : (k + 1) * per]), training=training)
            x = outputs[0]
            new_states.extend(outputs[1:])
        return self.readout(x), new_states

    def call(self, inputs, training=False):
        problems, decoder_inputs = inputs
        logits, _ = self.decode(decoder_inputs, self.encode(problems, training), training)
        return logits

    def greedy(self, problems, answer_len: int, go_id: int):
        """Greedy decoding: answer ids [B, answer_len] (inference mode)."""
        states = self.encode(problems, training=False)
        token = tf.fill(tf.shape(problems)[:1], tf.cast(go_id, problems.dtype))
        answer = []
        for _ in range(answer_len):
            logits, states = self.decode(token[:, None], states, training=False)
            token = tf.argmax(logits[:, -1], axis=-1, output_type=problems.dtype)
            answer.append(token)
        return tf.stack(answer, axis=1)

    def get_config(self):
        return {
            **super().get_config(),
            "num_symbols": self.num_symbols,
            "embedding_dim": self.embedding_dim,
            "recurrent": dataclasses.asdict(self.recurrent),
            "num_layers": self.num_layers,
            "seed": self.seed,
        }
