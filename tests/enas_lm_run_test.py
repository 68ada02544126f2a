"""The ENAS search of a recurrent cell on the generated corpus: the shared
model's validation perplexity falls, rewards are 80 / ppl, and the derived
cell retrains through train.py."""

import dataclasses
import json
import os
import re

import pytest

from conftest import run_script
from nas_tf import config as config_lib
from nas_tf import controller as controller_lib
from nas_tf.controller import reinforce
from nas_tf.data import synthetic_text
from nas_tf.search import enas_config
from nas_tf.search import run
from nas_tf.search import search_config

EPOCHS = 4


def _config(corpus, **train):
    return search_config.SearchConfig(
        space="enas_rnn", space_params={"layout": "enas_lm", "num_nodes": 3},
        strategy="enas", dataset="synthetic_text", seed=1,
        controller=controller_lib.CONTROLLER_PRESETS["enas_lm"],
        reinforce=dataclasses.replace(
            reinforce.REINFORCE_PRESETS["enas_lm"], num_aggregate=3),
        # No dropout: a model this small underfits with it.
        lm=config_lib.LmConfig(
            vocab_size=len(corpus.vocab), hidden_size=24, decoder_bias=False,
            output_dropout=0.0, hidden_dropout=0.0, x_dropout=0.0,
            input_dropout=0.0, embedding_dropout=0.0),
        lm_train=config_lib.LmTrainConfig(**{
            **dict(epochs=EPOCHS, batch_size=16, bptt=12,
                   variable_bptt=False, learning_rate=20.0, clip_norm=0.25,
                   eval_batch_size=8, max_steps=150, log_every=1000),
            **train}),
        enas=enas_config.EnasConfig(controller_train_steps=2,
                                    derive_samples=4),
        reward="80/ppl")


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    corpus = synthetic_text.synthetic_corpus(0)
    config = _config(corpus)
    logdir = tmp_path_factory.mktemp("enas_lm")
    lines = []
    result = run.run_search(config, str(logdir), corpus, lines.append)
    return logdir, result, lines


def test_shared_model_validation_perplexity_falls(searched):
    _, result, lines = searched
    ppls = [float(m.group(1)) for m in
            (re.search(r"derived cell: validation ppl ([0-9.]+)", line)
             for line in lines) if m]
    assert len(ppls) == EPOCHS
    # 257 words: a uniform model has ppl 257; the grammar is far more
    # predictable, and the shared weights learn it epoch after epoch.
    assert ppls[-1] < 0.8 * ppls[0] and ppls[0] < 257
    for record in result.history:
        ppl = record["metrics"]["valid_ppl"]
        assert record["reward"] == pytest.approx(80 / ppl)


@pytest.mark.slow
def test_derived_cell_retrains_through_train_py(searched, tmp_path):
    logdir = searched[0]
    code, out, err = run_script(
        "train.py", f"--flagfile={logdir}/{run.BEST_SPACE_FILE}",
        f"--arch_file={logdir}/{run.BEST_FILE}", "--dataset=synthetic_text",
        "--vocab_size=257", "--hidden_size=24", "--nodecoder_bias",
        "--output_dropout=0", "--hidden_dropout=0", "--x_dropout=0",
        "--input_dropout=0", "--embedding_dropout=0", "--learning_rate=20",
        "--epochs=1", "--batch_size=16", "--bptt=12", "--max_steps=150",
        "--eval_batch_size=8", "--test_batch_size=8",
        f"--logdir={tmp_path}/final")
    assert code == 0, err
    result = json.load(open(os.path.join(tmp_path, "final", "result.json")))
    # Well below the 257 of a uniform guess: the cell trained.
    assert 1 < result["test_ppl"] < 150
