"""Fixtures shared by the whole suite live in tests/fixtures/, one module per
real component, each registered here as a pytest plugin."""

pytest_plugins = [
    "tests.fixtures.emulator",
    "tests.fixtures.azurite",
    "tests.fixtures.sidecars",
]
