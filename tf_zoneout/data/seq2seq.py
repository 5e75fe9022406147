"""Toy sequence-to-sequence tasks generated on the fly from a seed.

- ``addition``: "a+b" -> the sum (the paper's toy task): 13 symbols (digits, "+",
  pad, go); the problem left-padded to 13 symbols, the answer right-padded to 7.
- ``program``: learning to execute (Zaremba & Sutskever, 2014): small Python programs
  with assignments, + and -, if-statements and one print; the answer is what it prints.

Splits are by a hash of the problem text, so no problem appears in two splits.
"""

from __future__ import annotations

import hashlib

import numpy as np
import tensorflow as tf

PAD, GO = "_", "^"
ADDITION_SYMBOLS = "0123456789+" + PAD + GO
ADDITION_PROBLEM_LEN = 13
ADDITION_ANSWER_LEN = 7
PROGRAM_SYMBOLS = "0123456789abcdefiprnt=+-<>:()\n " + PAD + GO
PROGRAM_VARIABLES = "abcde"
SPLIT_PERCENT = {"train": (0, 80), "validation": (80, 90), "test": (90, 100)}
TASKS = ("addition", "program")


def split_of(problem: str) -> str:
    """The split a problem belongs to, from a hash of its text (80/10/10)."""
    bucket = int.from_bytes(hashlib.sha1(problem.encode()).digest()[:4], "big") % 100
    return next(name for name, (lo, hi) in SPLIT_PERCENT.items() if lo <= bucket < hi)


def addition_problem(rng: np.random.Generator, max_digits: int) -> tuple[str, str]:
    """One "a+b" problem with operands of 1..max_digits digits, and its answer."""
    a, b = (int(rng.integers(0, 10 ** int(rng.integers(1, max_digits + 1)))) for _ in range(2))
    return f"{a}+{b}", str(a + b)


def program_problem(rng: np.random.Generator, max_digits: int, num_statements: int = 4) -> tuple[str, str]:
    """A small straight-line program (valid Python) and what it prints.

    Statements: ``v=N``, ``v=u+N``, ``v=u-w``, ``if u>N:v=v+M``; the last line prints
    an expression of a defined variable.
    """

    def number():
        return int(rng.integers(0, 10 ** int(rng.integers(1, max_digits + 1))))

    env: dict[str, int] = {}
    lines = []
    for _ in range(num_statements):
        target = PROGRAM_VARIABLES[int(rng.integers(len(PROGRAM_VARIABLES)))]
        known = sorted(env)
        kind = int(rng.integers(4)) if known else 0
        if kind == 0:
            value = number()
            lines.append(f"{target}={value}")
        elif kind == 1:
            source, n = known[int(rng.integers(len(known)))], number()
            op = "+" if rng.random() < 0.5 else "-"
            value = env[source] + n if op == "+" else env[source] - n
            lines.append(f"{target}={source}{op}{n}")
        elif kind == 2:
            u, w = (known[int(rng.integers(len(known)))] for _ in range(2))
            value = env[u] - env[w]
            lines.append(f"{target}={u}-{w}")
        else:
            cond, n, m = known[int(rng.integers(len(known)))], number(), number()
            base = env.get(target, 0)
            if target not in env:
                lines.append(f"{target}=0")
            value = base + m if env[cond] > n else base
            lines.append(f"if {cond}>{n}:{target}={target}+{m}")
        env[target] = value
    shown = sorted(env)[int(rng.integers(len(env)))]
    n = number()
    lines.append(f"print({shown}+{n})")
    return "\n".join(lines), str(env[shown] + n)


def generate(task: str, split: str, count: int, seed: int, level: int = 2) -> list[tuple[str, str]]:
    """``count`` (problem, answer) pairs of ``split``, deterministic in (task, split, seed, level).

    Args:
        task: "addition" or "program".
        level: maximum number of digits of each number (the curriculum level).
    """
    if task not in TASKS:
        raise ValueError(f"unknown seq2seq task {task!r}; expected one of {TASKS}")
    if split not in SPLIT_PERCENT:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLIT_PERCENT)}")
    if task == "addition" and not 1 <= level <= 5:
        raise ValueError(f"addition `level` (digits) must be in 1..5 to fit the padding; got {level}")
    rng = np.random.default_rng([seed, level, TASKS.index(task)])
    make = addition_problem if task == "addition" else program_problem
    examples = []
    attempts = 0
    while len(examples) < count:
        attempts += 1
        if attempts > 200 * count + 1000:
            raise ValueError(f"could not generate {count} distinct {split} problems at level {level}")
        problem, answer = make(rng, level)
        if split_of(problem) == split:
            examples.append((problem, answer))
    return examples


def encode(examples, task: str, problem_len: int | None = None, answer_len: int | None = None):
    """Id arrays (problems [N, P] left-padded, answers [N, A] right-padded) for a task's symbols.

    P and A are the addition task's fixed sizes; for programs, the longest in
    ``examples`` (+1 pad for answers) unless given.
    """
    symbols = ADDITION_SYMBOLS if task == "addition" else PROGRAM_SYMBOLS
    index = {s: i for i, s in enumerate(symbols)}
    if task == "addition":
        problem_len, answer_len = ADDITION_PROBLEM_LEN, ADDITION_ANSWER_LEN
    problem_len = problem_len or max(len(p) for p, _ in examples)
    answer_len = answer_len or max(len(a) for _, a in examples) + 1
    too_long = [p for p, a in examples if len(p) > problem_len or len(a) > answer_len]
    if too_long:
        raise ValueError(f"{len(too_long)} example(s) exceed the padded sizes, e.g. {too_long[0]!r}")
    problems = np.full((len(examples), problem_len), index[PAD], np.int32)
    answers = np.full((len(examples), answer_len), index[PAD], np.int32)
    for row, (problem, answer) in enumerate(examples):
        problems[row, problem_len - len(problem) :] = [index[c] for c in problem]
        answers[row, : len(answer)] = [index[c] for c in answer]
    return problems, answers


def seq2seq_dataset(
    task: str, split: str, count: int, batch_size: int, seed: int, level: int = 2
) -> tf.data.Dataset:
    """Batches (problem ids [B, P], answer ids [B, A]) of ``count`` generated examples."""
    problems, answers = encode(generate(task, split, count, seed, level), task)
    ds = tf.data.Dataset.from_tensor_slices((problems, answers))
    if split == "train":
        ds = ds.shuffle(len(problems), seed=seed)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
