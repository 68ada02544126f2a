"""history.jsonl: one JSON object per evaluated child, appended and synced.

A run killed while writing leaves at most one torn last line; ``load``
drops it (and rewrites the file without it), so the child is simply
evaluated again. Every complete line is a finished child that is never
evaluated twice.
"""

import json
import os

from nas_tf.utils import fileio


class History:
    """The records of a run, in child order."""

    def __init__(self, path: str):
        self.path = path
        self.records = []

    def load(self) -> list:
        if not os.path.exists(self.path):
            return self.records
        with open(self.path, "rb") as f:
            raw = f.read()
        lines = raw.split(b"\n")
        kept = []
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines) - 1:
                    break  # the torn last line of a killed run
                raise ValueError(f"{self.path}: line {number + 1} is not "
                                 f"JSON; the history is damaged") from None
            if record.get("step") != len(kept):
                raise ValueError(
                    f"{self.path}: line {number + 1} holds step "
                    f"{record.get('step')}, expected {len(kept)}")
            kept.append(record)
        # Rewritten when a torn line was dropped, or when the last record
        # lacks its newline (the next append would join onto it).
        if (len(kept) != sum(1 for line in lines if line.strip()) or
                not raw.endswith(b"\n")) and raw:
            fileio.write_file_atomically(
                self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self.records = kept
        return kept

    def append(self, record: dict) -> None:
        if record["step"] != len(self.records):
            raise ValueError(f"history: step {record['step']} appended after "
                             f"{len(self.records)} records")
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)

    def truncate(self, count: int) -> None:
        """Keeps the first ``count`` records (a resumed phase redoes the
        rest)."""
        if count < len(self.records):
            self.records = self.records[:count]
            fileio.write_file_atomically(
                self.path, "".join(json.dumps(r) + "\n" for r in self.records))

    def __len__(self):
        return len(self.records)

    def best(self):
        """The record with the highest reward (the first of ties)."""
        if not self.records:
            return None
        return max(self.records, key=lambda r: r["reward"])
