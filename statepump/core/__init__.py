"""The pure core: everything that decides what the state is, with no I/O of its own.

Nothing in this package opens a socket or a file, reads a clock to make a
decision, or starts a task; callers hand it values and get values back, so
every rule here is tested without I/O (hypothesis where it counts). Where
data enters (events), how it is folded (fold, reducers, the ``config``
language), how the catch-up is planned (plan), and the file formats read
and written (the snapshot codec, Capture's Avro files, the socket API's
HTTP exchanges) all live here.
"""
