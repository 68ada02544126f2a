"""Progress lines: how long something took or has left."""


def duration(seconds: float) -> str:
    """``1h05m`` from an hour on, else ``4m07s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
