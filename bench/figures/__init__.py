"""One module per figure of the table; each has ``run(size) -> Figure``."""
