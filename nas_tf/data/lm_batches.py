"""Truncated-BPTT batches for word-level language models, as numpy arrays.

A split's id stream is cut into `batch_size` contiguous rows (`batchify`),
then walked along time in windows: fixed-length windows for evaluation and
the AWD-LSTM / DARTS variable-length windows for training. Arrays are
batch-major, `[batch_size, time]`, so they feed a `tf.function` with
`[None, None]` input signatures directly.
"""

import math
import numbers
from typing import Iterator, NamedTuple

import numpy as np

# Probability that a training window is drawn around the full `bptt` rather
# than around `bptt / 2`, and the standard deviation of its length.
_P_FULL_BPTT = 0.95
_SEQ_LEN_STDDEV = 5
_MIN_SEQ_LEN = 5


class Window(NamedTuple):
    """One BPTT window: `targets` are `inputs` shifted one step in time.

    `lr_scale` is what the originals multiply the learning rate by for this
    window, so that short windows take proportionally smaller steps.
    """

    inputs: np.ndarray  # [batch_size, seq_len] int32
    targets: np.ndarray  # [batch_size, seq_len] int32
    seq_len: int
    lr_scale: float


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Cuts a 1-D id stream into `batch_size` contiguous rows.

    Row b is the b-th contiguous chunk of the stream; the remainder that does
    not fill a whole column is dropped, as in the originals' `batchify`
    (which returns the transpose, `[num_steps, batch_size]`).
    """
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D stream; got shape {ids.shape}")
    if not _is_int(batch_size) or batch_size < 1:
        raise ValueError(
            f"batch_size must be an integer >= 1; got {batch_size!r}")
    batch_size = int(batch_size)
    if ids.size < 2 * batch_size:
        raise ValueError(
            f"a stream of {ids.size} tokens is too short for batch_size "
            f"{batch_size}: each row needs at least 2 tokens (an input and "
            f"its target), so at least {2 * batch_size} tokens; use a "
            "smaller batch_size")
    num_steps = ids.size // batch_size
    return np.ascontiguousarray(
        ids[:batch_size * num_steps].reshape(batch_size, num_steps),
        dtype=np.int32)


def _check_batched(batched: np.ndarray) -> np.ndarray:
    batched = np.asarray(batched)
    if batched.ndim != 2 or batched.shape[1] < 2:
        raise ValueError(
            "batched must be a [batch_size, num_steps] array with "
            f"num_steps >= 2 (see batchify); got shape {batched.shape}")
    return batched


def _check_bptt(bptt: int) -> None:
    if not _is_int(bptt) or bptt < 1:
        raise ValueError(f"bptt must be an integer >= 1; got {bptt!r}")


def _window(batched: np.ndarray, start: int, seq_len: int,
            lr_scale: float) -> Window:
    return Window(inputs=batched[:, start:start + seq_len],
                  targets=batched[:, start + 1:start + 1 + seq_len],
                  seq_len=seq_len, lr_scale=lr_scale)


def fixed_windows(batched: np.ndarray, bptt: int) -> Iterator[Window]:
    """Yields consecutive windows of `bptt` steps; the last may be shorter.

    This is the originals' evaluation walk: `for i in range(0, n - 1, bptt)`
    with `seq_len = min(bptt, n - 1 - i)`. Every window has lr_scale 1.0.
    """
    batched = _check_batched(batched)
    _check_bptt(bptt)
    bptt, num_steps = int(bptt), batched.shape[1]
    for start in range(0, num_steps - 1, bptt):
        yield _window(batched, start, min(bptt, num_steps - 1 - start), 1.0)


def variable_windows(batched: np.ndarray, bptt: int,
                     rng: np.random.Generator,
                     max_seq_len_delta: int = 20) -> Iterator[Window]:
    """Yields the AWD-LSTM / DARTS variable-length training windows.

    The length rule is the training loop of quark0/darts `rnn/train.py`
    (taken from AWD-LSTM, Merity et al. 2017): the window is centred on
    `bptt` with probability 0.95 and on `bptt / 2` otherwise,
    `seq_len = max(5, int(rng.normal(centre, 5)))`, capped at
    `bptt + max_seq_len_delta` and at the data left. Windows start at 0 and
    advance by their length while `start < num_steps - 2`, so, as in the
    original, the final step can go unused.

    `lr_scale` is the drawn length over `bptt`, as the originals scale the
    learning rate; it equals `seq_len / bptt` for every window except a last
    window that the end of the data cut short.
    """
    batched = _check_batched(batched)
    _check_bptt(bptt)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            "rng must be a numpy Generator (np.random.default_rng(seed)); "
            f"got {type(rng).__name__}")
    if not _is_int(max_seq_len_delta) or max_seq_len_delta < 0:
        raise ValueError(
            f"max_seq_len_delta must be an integer >= 0; got "
            f"{max_seq_len_delta!r}")
    bptt, max_seq_len_delta = int(bptt), int(max_seq_len_delta)
    num_steps = batched.shape[1]
    start = 0
    while start < num_steps - 2:
        centre = bptt if rng.random() < _P_FULL_BPTT else bptt / 2.0
        drawn = max(_MIN_SEQ_LEN, int(rng.normal(centre, _SEQ_LEN_STDDEV)))
        drawn = min(drawn, bptt + max_seq_len_delta)
        seq_len = min(drawn, num_steps - 1 - start)
        yield _window(batched, start, seq_len, drawn / bptt)
        start += drawn


def num_windows(num_steps: int, bptt: int, variable: bool = False) -> int:
    """How many windows a walk over `num_steps` steps yields, for progress
    reports: exact for fixed windows, the expected count for variable ones.
    """
    _check_bptt(bptt)
    if num_steps < 2:
        return 0
    if not variable:
        return math.ceil((num_steps - 1) / bptt)
    # Mean drawn length: the mixture of centres, less about half a step that
    # int() truncates (ignoring the rarely active clips at 5 and the cap).
    mean_len = _P_FULL_BPTT * bptt + (1 - _P_FULL_BPTT) * bptt / 2.0 - 0.5
    return max(1, math.ceil((num_steps - 2) / max(mean_len, _MIN_SEQ_LEN)))
