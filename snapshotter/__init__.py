"""The ``snapshotter`` command: writes versioned snapshots of one partition's state.

Run from cron (or ``--continuous``), it loads the newest usable snapshot,
catches up with the pump's own plan (Capture, then the hub) to the hub's last
sequence number as read at the start of the run, writes a snapshot named by
that number (create-only), and applies the retention policy
(:mod:`snapshotter.retention`). All loading, catching up and encoding is the
pump's (:mod:`statepump.components`, :mod:`statepump.stores.snapshots`); this package
only decides *what* to write and *what* to delete.

In a program::

    from statepump.settings import load
    from snapshotter.run import run_once

    outcome = await run_once(load({"snapshot_dir": "/var/lib/statepump"}))
    print(outcome.line())
"""
