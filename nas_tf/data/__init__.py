"""Language-model corpora and the batches the LM searches train on.

Submodules are imported on demand so that importing this package stays cheap
and does not pull in tensorflow_datasets (only `ptb` needs it).
"""
