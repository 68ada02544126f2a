"""The search history file: what a kill can leave, and what load makes of
it."""

import json

import pytest

from nas_tf.search import history as history_lib


def _write(path, text):
    path.write_bytes(text.encode())


def _record(step):
    return {"step": step, "reward": 0.5 * step}


def test_a_torn_last_line_is_dropped_and_the_file_repaired(tmp_path):
    path = tmp_path / "history.jsonl"
    _write(path, json.dumps(_record(0)) + "\n" + '{"step": 1, "rew')
    history = history_lib.History(str(path))
    assert history.load() == [_record(0)]
    history.append(_record(1))
    assert history_lib.History(str(path)).load() == [_record(0), _record(1)]


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "history.jsonl"
    _write(path, json.dumps(_record(0)) + "\n" + json.dumps(_record(1)))
    history = history_lib.History(str(path))
    assert history.load() == [_record(0), _record(1)]
    history.append(_record(2))
    assert len(history_lib.History(str(path)).load()) == 3


@pytest.mark.parametrize("text,message", [
    ('{"step": 0}\nnot json\n{"step": 1}\n', "line 2 is not JSON"),
    ('{"step": 0}\n{"step": 2}\n', "line 2 holds step 2, expected 1"),
])
def test_damage_before_the_last_line_is_an_error(tmp_path, text, message):
    path = tmp_path / "history.jsonl"
    _write(path, text)
    with pytest.raises(ValueError, match=message):
        history_lib.History(str(path)).load()
