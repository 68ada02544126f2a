"""A search run and what it is made of.

``search_config``: the frozen description of a run and its checks;
``run``: the loop, the run directory and resume; ``children``: building,
training and scoring one child; ``reward``: the reward formula;
``history``: history.jsonl; ``review``: what TensorBoard shows of the
best children.
"""
