# The project's entry points. Each goes through scripts/bootstrap, which installs what is
# missing (Debian packages, .venv) and takes seconds when everything is there.
.PHONY: setup demo test lint

setup:
	bash scripts/bootstrap

demo: setup
	bash scripts/demo

lint: setup
	.venv/bin/ruff check datacrumbs tests benchmarks
	.venv/bin/ruff format --check datacrumbs tests benchmarks
	.venv/bin/mypy

test: lint
	.venv/bin/python -m pytest
