"""A small name -> object registry that is loud on duplicate or unknown keys."""


class Registry:
    """Maps names to objects; used for search spaces and ops."""

    def __init__(self, what: str):
        self._what = what
        self._items = {}

    def register(self, name: str):
        """Decorator registering ``obj`` under ``name``."""

        def decorate(obj):
            if name in self._items:
                raise KeyError(f"{self._what} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str):
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"unknown {self._what} {name!r}; known: "
                f"{', '.join(sorted(self._items))}") from None

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items
