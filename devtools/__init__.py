"""Developer tooling (not installed with the package): process launchers for tests, bench, demo."""
