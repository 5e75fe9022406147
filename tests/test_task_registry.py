"""The task registry is the one list of tasks: everything that names tasks agrees with it."""

from __future__ import annotations

import inspect

import pytest

from tf_zoneout_train import config as config_lib
from tf_zoneout_train import presets, task_registry
from tf_zoneout_train.task_registry import TaskFamily, task_info


def test_every_task_has_a_preset_and_loadable_code_with_the_data_parameters():
    assert set(presets.PRESET_VALUES) == set(task_registry.TASK_NAMES)
    for task in task_registry.TASKS:
        entry = task.load()
        parameters = inspect.signature(entry).parameters
        assert {"tfds_dir", "data_dir"} <= set(parameters), task.name
        if task.family is not TaskFamily.ANALYSIS:
            assert entry.metric == task.metric or task.family is TaskFamily.LANGUAGE_MODEL


def test_fields_of_tasks_name_only_known_tasks():
    for tasks in config_lib._FIELDS_OF_TASKS.values():
        assert set(tasks) <= set(task_registry.TASK_NAMES)


def test_an_unknown_task_is_named_with_the_known_ones():
    with pytest.raises(KeyError, match="char_ptb, word_ptb"):
        task_info("char-ptb")
    with pytest.raises(config_lib.ConfigError, match="unknown task 'char-ptb'; choose from char_ptb"):
        config_lib.resolve("char-ptb", "smoke", {})


def test_the_train_command_lists_every_task(capsys):
    from tf_zoneout_train import cli

    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = capsys.readouterr().out
    for task in task_registry.TASKS:
        assert task.name in help_text and task.summary in help_text
