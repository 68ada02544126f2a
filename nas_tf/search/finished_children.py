"""Children that finished before an earlier child of their batch.

The history takes children in order, so when children train in parallel a
finished child may wait for an earlier one. It waits in ``finished/`` as
``<index>.json`` (written atomically, removed once the child is in the
history): a run killed meanwhile takes it from there instead of training it
again.
"""

import json
import os
from typing import Optional

from nas_tf.utils import fileio


class FinishedChildren:
    """The finished children's records in ``directory``."""

    def __init__(self, directory: str):
        self.directory = directory

    def _path(self, index: int) -> str:
        return os.path.join(self.directory, f"{index}.json")

    def put(self, record: dict) -> None:
        os.makedirs(self.directory, exist_ok=True)
        fileio.write_file_atomically(self._path(record["step"]),
                                     json.dumps(record))

    def get(self, index: int, decision_values: list) -> Optional[dict]:
        """Child ``index``'s record if it finished with ``decision_values``
        (a record of another proposal is stale and is dropped)."""
        path = self._path(index)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            record = json.load(f)
        if record["decision_values"] != list(decision_values):
            self.discard(index)
            return None
        return record

    def discard(self, index: int) -> None:
        try:
            os.remove(self._path(index))
        except FileNotFoundError:
            pass
