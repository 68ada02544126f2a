"""The command-line scripts. In a checkout they run as files
(``python scripts/search.py``); an installed nas_tf carries them as the
``nas_tf_cli`` package behind the ``nas-*`` console commands."""
