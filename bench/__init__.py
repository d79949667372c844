"""The benchmark suite: every figure of issue 7 beside the anchor it is compared with.

Run ``python -m bench`` (all figures, full size), ``python -m bench --quick``
(tiny sizes, for the test that keeps the suite from rotting) or
``python -m bench --only 2,8``. It prints the table and writes ``BENCHMARKS.md``.
"""
