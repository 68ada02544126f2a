"""What TensorBoard shows first of a search: its rewards and what it found.

Everything here is in the tag group ``Search``, which TensorBoard lists
before the others (capitals sort first) and opens on a first visit, so the
default view shows how the search goes and what it has found, without
opening ``history.jsonl``:

* ``Search/reward`` and ``Search/best_reward`` (Scalars): every child's
  reward (the same series as the contract's ``controller/reward``) and the
  best so far, at the child's number.
* ``Search/best_architecture`` (Images): a drawing of the best child so far,
  in the style of the papers' figures (``nas_tf.drawing``), written at the
  step of the child that became the best (child k at step k). A drawing
  takes about half a second, so it is made only when the best changes.
  TensorBoard fits images into a small card: its "Toggle actual image size"
  button shows the drawing at its size.
* ``Search/top_architectures`` (Text): a markdown table of the ten best
  children (rank, child number, reward, main metric, tokens), written after
  every batch.

All follow the run's ``History``, so a resumed run continues from the best
of the loaded records instead of announcing its first new child as a new
best. A figure is never worth a search: a drawing that fails is reported in
one line and drawing stops for the rest of the run.
"""

import heapq

import tensorflow as tf

from nas_tf import drawing

GROUP = "Search"
REWARD_TAG = f"{GROUP}/reward"
BEST_REWARD_TAG = f"{GROUP}/best_reward"
IMAGE_TAG = f"{GROUP}/best_architecture"
TABLE_TAG = f"{GROUP}/top_architectures"
TOP_COUNT = 10


def architecture_image(space, arch, log):
    """The drawing of ``arch`` as an RGB image tensor, or None (after a
    one-line warning through ``log``): a figure never stops a search."""
    try:
        png = drawing.draw_architecture(space, arch)
    except Exception as e:
        log(f"warning: cannot draw the derived architecture "
            f"({type(e).__name__}: {e})")
        return None
    return tf.io.decode_png(png, channels=3)


def top_records(records, count: int = TOP_COUNT) -> list:
    """The ``count`` records with the highest rewards, best first. Equal
    rewards keep child order: the child that reached a reward first ranks
    first, as ``History.best`` picks it."""
    # nsmallest is stable: equal keys keep the records' order.
    return heapq.nsmallest(count, records, key=lambda r: -r["reward"])


def _cell(text: str) -> str:
    """``text`` safe inside a markdown table cell."""
    return text.replace("|", r"\|")


def top_table(records, metric: str, count: int = TOP_COUNT) -> str:
    """A markdown table of the best ``count`` of ``records``.

    ``metric`` is the child's main metric (``valid_accuracy`` or
    ``valid_ppl``), shown next to the reward because the reward formula
    hides it (NAS-RL's accuracy cubed, 80 / ppl squared). Numbers keep four
    significant digits: language-model rewards are far below 0.01.
    """
    top = top_records(records, count)
    lines = [f"Top {len(top)} of {len(records)} children by reward", "",
             f"| rank | child | reward | {metric} | tokens |",
             "|---:|---:|---:|---:|:---|"]
    for rank, record in enumerate(top, start=1):
        value = record["metrics"].get(metric)
        shown = "-" if value is None else f"{value:.4g}"
        lines.append(f"| {rank} | {record['step'] + 1} | "
                     f"{record['reward']:.4g} "
                     f"| {shown} | `{_cell(record['tokens'])}` |")
    return "\n".join(lines)


class SearchReview:
    """Writes a run's ``best_architecture`` and ``top_architectures``.

    Args:
      history: The run's ``History``; read, never written.
      writer: The run's summary writer.
      space_of: Child index -> the search space it was sampled from (with a
        depth schedule the space changes during the run).
      metric: The children's main metric, a key of a record's ``metrics``.
      log: The run's log callable, for the one warning a failed drawing
        gives.
    """

    def __init__(self, history, writer, space_of, metric: str, log):
        self._history = history
        self._writer = writer
        self._space_of = space_of
        self._metric = metric
        self._log = log
        self._drawn_step = None   # child step of the best already handled
        self._drawing_works = True
        self._table_size = None   # number of records of the last table

    def write_rewards(self, record: dict) -> None:
        """The reward of the child of ``record`` and the best so far, at the
        child's number."""
        with self._writer.as_default(step=record["step"] + 1):
            tf.summary.scalar(REWARD_TAG, record["reward"])
            tf.summary.scalar(BEST_REWARD_TAG, self._history.best()["reward"])

    def update_best(self) -> None:
        """Draws the best child if it is not the one drawn last.

        Called after every new child, and once when a run starts: a resumed
        run then draws the best of its loaded history again (the kill may
        have come before its figure was written) and compares new children
        with it.
        """
        best = self._history.best()
        if best is None or best["step"] == self._drawn_step:
            return
        self._drawn_step = best["step"]
        if not self._drawing_works:
            return
        image = self._drawing(best)
        if image is None:
            return
        with self._writer.as_default(step=best["step"] + 1):
            tf.summary.image(
                IMAGE_TAG, image[tf.newaxis],
                description="The best child so far, written at the step "
                "of the child that became the best; its reward and tokens "
                f"are row 1 of {TABLE_TAG}. Click the card's 'Toggle actual "
                "image size' button to read it.")
        self._writer.flush()

    def _drawing(self, record):
        """The drawing of ``record`` as an RGB image tensor, or None (after
        one warning) when its space cannot be drawn."""
        space = self._space_of(record["step"])
        try:
            arch = space.from_tokens(record["decision_values"])
            png = drawing.draw_architecture(space, arch)
            return tf.io.decode_png(png, channels=3)
        except Exception as e:  # A figure never stops a search.
            self._drawing_works = False
            self._log(f"warning: cannot draw {space.name} architectures "
                      f"({type(e).__name__}: {e}); TensorBoard gets no "
                      f"{IMAGE_TAG} image, the search goes on")
            return None

    def write_table(self, step: int) -> None:
        """Writes the top table at ``step``, unless the last one already
        covered the same records (the last batch and the end of a run)."""
        records = self._history.records
        if not records or len(records) == self._table_size:
            return
        self._table_size = len(records)
        with self._writer.as_default(step=step):
            tf.summary.text(TABLE_TAG, top_table(records, self._metric))
        self._writer.flush()
