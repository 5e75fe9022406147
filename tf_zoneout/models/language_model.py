"""A stacked-RNN language model: embedding -> recurrent layers -> softmax over the vocabulary."""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tf_zoneout.models.recurrent import RecurrentSpec, initializer, make_recurrent_layer, num_states


class LanguageModel(keras.Model):
    """Next-token model with explicit recurrent state, for truncated BPTT and generation.

    Args:
        vocab_size: number of token types V.
        embedding_dim: size E of the token embeddings.
        recurrent: the recurrent layers' description (cell, units, zoneout, baselines).
        num_layers: stacked recurrent layers.
        dropout: non-recurrent dropout (Zaremba et al.) on the embeddings, between
            layers and before the softmax; a drop probability.
        seed: seeds the initializers, zoneout masks and dropout.

    Call: ``model(ids [B, T] int, states=None, training=False, step_mask=None)`` -> ``(logits [B, T, V],
    states)``, where ``states`` is a flat list of [B, H] tensors, ``num_states(cell)``
    per layer, layer by layer (None: zeros).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        recurrent: RecurrentSpec,
        num_layers: int = 1,
        dropout: float = 0.0,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.recurrent = recurrent
        self.num_layers = num_layers
        self.dropout_rate = dropout
        self.seed = seed
        scale = recurrent.init_scale if recurrent.init == "uniform" else 0.1
        self.embedding = keras.layers.Embedding(
            vocab_size,
            embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(-scale, scale, seed=seed),
            name="embedding",
        )
        self.rnn_layers = [
            make_recurrent_layer(recurrent, seed=seed + 10 * (k + 1), name=f"rnn_{k}")
            for k in range(num_layers)
        ]
        self.dropouts = [
            keras.layers.Dropout(dropout, seed=seed + 1000 + k, name=f"dropout_{k}")
            for k in range(num_layers + 1)
        ]
        self.softmax = keras.layers.Dense(
            vocab_size,
            kernel_initializer=initializer(recurrent.init, recurrent.init_scale, seed + 5, False),
            name="softmax",
        )

    @property
    def states_per_layer(self) -> int:
        return num_states(self.recurrent.cell)

    def zero_states(self, batch_size) -> list[tf.Tensor]:
        """Zero initial states: a flat list of [B, H] tensors."""
        shape = tf.stack([batch_size, self.recurrent.units])
        return [tf.zeros(shape) for _ in range(self.num_layers * self.states_per_layer)]

    def call(self, ids, states=None, training=False, step_mask=None):
        x = self.embedding(ids)
        if states is None:
            states = self.zero_states(tf.shape(ids)[0])
        per = self.states_per_layer
        new_states = []
        x = self.dropouts[0](x, training=training)
        for k, layer in enumerate(self.rnn_layers):
            kwargs = {"mask": step_mask} if step_mask is not None else {}
            outputs = layer(
                x, initial_state=list(states[k * per : (k + 1) * per]), training=training, **kwargs
            )
            x, layer_states = outputs[0], list(outputs[1:])
            new_states.extend(layer_states)
            x = self.dropouts[k + 1](x, training=training)
        return self.softmax(x), new_states

    def step(self, tokens, states):
        """One token per row at inference, the state carried: what ``call`` computes at one step,
        with no loop (each layer's ``inference_step``; the batch-normalized LSTM, whose statistics
        depend on the time step, has none).

        Args:
            tokens: [B] int token ids, the tokens read at this step.
            states: the flat list of [B, H] states (``zero_states`` to start).

        Returns:
            ``(logits [B, V], states)``: the next token's logits and the new states.
        """
        x = self.embedding(tokens)
        per = self.states_per_layer
        new_states = []
        for k, layer in enumerate(self.rnn_layers):
            layer_states = layer.inference_step(x, list(states[k * per : (k + 1) * per]))
            new_states.extend(layer_states)
            x = layer_states[0]
        return self.softmax(x), new_states

    def logits_from_states(self, states):
        """The next token's logits [B, V] at inference, from the states alone: the top layer's h is
        its output, which (dropout being off at inference) the softmax layer reads.

        Args:
            states: the flat list of [B, H] states after the last token read.
        """
        return self.softmax(states[(self.num_layers - 1) * self.states_per_layer])

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "recurrent": dataclasses.asdict(self.recurrent),
            "num_layers": self.num_layers,
            "dropout": self.dropout_rate,
            "seed": self.seed,
        }


def token_nll(logits, targets):
    """Negative log-likelihood (nats) of each target token: [B, T] from logits [B, T, V]."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=tf.cast(logits, tf.float32))
