"""Project tooling: generators of committed files and the checks of tests/deploy."""
