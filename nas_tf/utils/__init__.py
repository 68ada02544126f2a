"""Small helpers shared by the library: atomic files, progress text, name
registries."""
