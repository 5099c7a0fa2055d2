# The project's entry points. Each goes through scripts/bootstrap, which installs what is
# missing (Debian packages, .venv) and takes seconds when everything is there.
.PHONY: setup demo test test-kernels lint

setup:
	bash scripts/bootstrap

demo: setup
	bash scripts/demo

lint: setup
	.venv/bin/ruff check datacrumbs tests benchmarks
	.venv/bin/ruff format --check datacrumbs tests benchmarks
	.venv/bin/mypy

# The suite on this machine's kernel, then the kernel matrix: the tests that cover each kernel
# difference under Debian's 6.1 and 6.12 in QEMU guests, and 5.10 refused (tests/kernels/;
# ~6 min on 2 cores, the guests at once).
test: lint
	.venv/bin/python -m pytest
	.venv/bin/python tests/kernels/matrix.py

test-kernels: setup
	.venv/bin/python tests/kernels/matrix.py
