"""The presets of every task, as data: per task a "base" (what every preset of the task shares) and
each preset's differences from it. ``config.resolve`` applies RunConfig defaults <- base <- preset
<- --flags. Section numbers cite the paper (arXiv 1606.01305, ICLR 2017 version).
"""

from __future__ import annotations

_SMOKE = dict(epochs=2, steps_per_epoch=5, eval_batches=3, checkpoint_every=4, log_every=2)
_ZAREMBA = dict(  # Zaremba et al. (2014): contiguous rows, SGD, uniform init, summed-over-time loss
    num_layers=2,
    batching="contiguous",
    init="uniform",
    optimizer="sgd",
    learning_rate=1.0,
    lr_schedule="zaremba",
    loss_reduction="sum_over_time",
    batch_size=20,
)
PRESET_VALUES: dict[str, dict[str, dict]] = {
    "char_ptb": {
        # 4.1.1: 1 x 1000 LSTM, sequences of 100, batch 32, Adam 0.002, clipping 1, orthogonal init.
        "base": dict(units=1000, seq_len=100, batch_size=32, learning_rate=0.002, clip_norm=1.0),
        # 4.1.1: best zoneout z_c=0.5, z_h=0.05; no epoch count given: train to convergence (the
        # authors' log has its best validation BPC after epoch 100), early stopping on validation.
        "paper": dict(zoneout_cells=0.5, zoneout_states=0.05, epochs=300, patience=10),
        "cpu": dict(
            units=256,
            embedding_dim=64,
            batch_size=64,
            zoneout_cells=0.5,
            zoneout_states=0.05,
            epochs=6,
            patience=3,
        ),
        # `make demo`: a few minutes on 2 cores. lr 0.01 and 256 units: 1.97 validation BPC after
        # the 600 steps (lr 0.003 and 128 units stayed at 2.69, and its samples were not words).
        "demo": dict(
            units=256,
            embedding_dim=32,
            batch_size=64,
            learning_rate=0.01,
            zoneout_cells=0.5,
            zoneout_states=0.05,
            epochs=2,
            steps_per_epoch=300,
            eval_batches=60,
        ),
        "smoke": dict(
            _SMOKE,
            units=32,
            embedding_dim=16,
            seq_len=20,
            batch_size=8,
            steps_per_epoch=6,
            train_fraction=0.01,
            zoneout_cells=0.5,
            zoneout_states=0.05,
        ),
    },
    "word_ptb": {
        "base": dict(_ZAREMBA),
        # 4.1.2: Zaremba's large model (2 x 1500, 35 steps, init 0.04, lr 1 for 14 epochs then /1.15,
        # clipping 10, 55 epochs, dropout 0.65) with zoneout z_c=0.25, z_h=0.025 on top.
        "paper": dict(
            units=1500,
            embedding_dim=1500,
            seq_len=35,
            init_scale=0.04,
            lr_decay=1 / 1.15,
            lr_decay_start=14,
            clip_norm=10.0,
            epochs=55,
            dropout=0.65,
            zoneout_cells=0.25,
            zoneout_states=0.025,
            patience=0,
        ),
        # Table 1's "Unregularized LSTM" row is Zaremba's small model (4.1.2): 2 x 200, 20 steps, init 0.1,
        # lr 1 for 4 epochs then halved each epoch, 13 epochs, clipping 5, no dropout, no early stopping.
        "small": dict(
            units=200,
            embedding_dim=200,
            seq_len=20,
            init_scale=0.1,
            lr_decay=0.5,
            lr_decay_start=4,
            clip_norm=5.0,
            epochs=13,
            patience=0,
        ),
        "cpu": dict(
            units=200,
            embedding_dim=200,
            seq_len=35,
            init_scale=0.1,
            lr_decay=0.5,
            lr_decay_start=4,
            clip_norm=5.0,
            epochs=6,
            dropout=0.2,
            zoneout_cells=0.25,
            zoneout_states=0.025,
            patience=3,
        ),
        "smoke": dict(
            _SMOKE,
            units=32,
            embedding_dim=32,
            seq_len=10,
            batch_size=4,
            init_scale=0.1,
            lr_decay=0.5,
            lr_decay_start=1,
            clip_norm=5.0,
            train_fraction=0.01,
            zoneout_cells=0.25,
            zoneout_states=0.025,
        ),
    },
    "text8": {
        # 4.2: 1 x 2000, orthogonal init, batch 128, Adam 0.001, sequences of 180, clipping 1.
        "base": dict(seq_len=180, learning_rate=0.001, clip_norm=1.0, zoneout_cells=0.5, zoneout_states=0.05),
        # 4.2, Fig. 4: zoneout z_c=0.5, z_h=0.05; early stopping on validation.
        "paper": dict(units=2000, batch_size=128, epochs=100, patience=5),
        "cpu": dict(
            units=256,
            embedding_dim=64,
            batch_size=64,
            learning_rate=0.002,
            epochs=1,
            steps_per_epoch=2000,
            eval_batches=200,
        ),
        "smoke": dict(_SMOKE, units=32, embedding_dim=16, seq_len=20, batch_size=4),
    },
    "pmnist": {
        # 4.3: 100 units, batch 100, RMSProp lr 0.001 with "a decay rate of 0.5 for the moving average of
        # gradient norms" (rho=0.5, not a learning-rate decay), clipping 1, z_c = z_h = 0.15.
        "base": dict(
            units=100,
            batch_size=100,
            optimizer="rmsprop",
            rmsprop_rho=0.5,
            learning_rate=0.001,
            clip_norm=1.0,
            zoneout_cells=0.15,
            zoneout_states=0.15,
        ),
        # 4.3: 150 epochs at a constant learning rate, no early stopping.
        "paper": dict(epochs=150, patience=0),
        "cpu": dict(epochs=2, steps_per_epoch=150, eval_batches=20),
        "smoke": dict(
            _SMOKE,
            units=16,
            batch_size=8,
            steps_per_epoch=3,
            eval_batches=2,
            train_fraction=0.01,
            checkpoint_every=2,
            log_every=1,
        ),
    },
    "seq2seq": {
        # The paper gives no settings for the toy task; these are the original code's: 2 x 128 enc.-decoder,
        # Adam 0.01, batch 32, uniform init 0.08, no clipping, lr x0.95 when validation error rises at the
        # last curriculum level, z_c = 0.05.
        "base": dict(
            num_layers=2,
            units=128,
            embedding_dim=32,
            batch_size=32,
            init="uniform",
            init_scale=0.08,
            learning_rate=0.01,
            clip_norm=0.0,
            lr_schedule="plateau",
            lr_decay=0.95,
            zoneout_cells=0.05,
        ),
        "paper": dict(epochs=100, patience=100, train_examples=50_000, eval_examples=2_000),
        "cpu": dict(epochs=20, patience=20, train_examples=20_000, eval_examples=1_000),
        "smoke": dict(
            _SMOKE,
            units=16,
            embedding_dim=8,
            batch_size=16,
            steps_per_epoch=4,
            train_examples=200,
            eval_examples=32,
            checkpoint_every=3,
            log_every=1,
        ),
    },
    "gradient_propagation": {
        # 4.4, Fig. 6: gradient norms per time step after one epoch of pMNIST training (as in 4.3).
        "base": dict(
            units=100, batch_size=100, optimizer="rmsprop", rmsprop_rho=0.5, learning_rate=0.001, epochs=1
        ),
        "paper": dict(),
        "cpu": dict(steps_per_epoch=100),
        "smoke": dict(
            units=8, batch_size=8, steps_per_epoch=2, train_fraction=0.01, eval_batches=1, log_every=1
        ),
    },
    "semantic_consistency": {
        # Toy of the original code (no section): a linear 2-unit RNN trained so that h_10 matches h_0.
        "base": dict(
            units=2,
            batch_size=32,
            learning_rate=0.01,
            seq_len=10,
            epochs=20,
            steps_per_epoch=100,
            clip_norm=0.0,
            compare="0,0.1,0.9",
        ),
        "paper": dict(),
        "cpu": dict(),
        "smoke": dict(batch_size=8, epochs=2, steps_per_epoch=5, log_every=1),
    },
}
