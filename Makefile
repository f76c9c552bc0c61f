# The two commands the README starts with: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ngser-installed

# The oldest NGSolve ngser supports (pyproject.toml: ngsolve>=$(NGSOLVE_OLDEST)), tested in an
# environment of its own. Its wheel requires netgen-mesher of the same version and an unpinned
# `mkl`; mkl 2026 no longer ships the libmkl_rt.so.2 it links against, hence the pin.
NGSOLVE_OLDEST ?= 6.2.2501
NGSOLVE_OLDEST_PINS ?= ngsolve==$(NGSOLVE_OLDEST) netgen-mesher==$(NGSOLVE_OLDEST) mkl==2025.3.1
OLDEST_VENV ?= .venv-ngsolve-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
# The stamp names the version: changing NGSOLVE_OLDEST reinstalls.
OLDEST_STAMP := $(OLDEST_VENV)/.ngser-installed-ngsolve-$(NGSOLVE_OLDEST)
# What runs under the oldest NGSolve: the NGSolve tests, the fixtures (files of both versions), the VTKHDF
# tests and the crafted-file fuzzer (hostile states reach NGSolve, whose refusals differ by version).
OLDEST_TESTS := tests/ngsolve tests/test_fixtures.py tests/test_vtkhdf.py tests/test_fuzz_crafted.py

.PHONY: demo test test-ngsolve-oldest fixtures-ngsolve-oldest bench lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[ngsolve,distributed,mpi,dev]"
	@touch $(STAMP)

$(OLDEST_STAMP): pyproject.toml
	@test -x $(OLDEST_PY) || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install --quiet --upgrade pip
	$(OLDEST_PY) -m pip install --quiet -e ".[ngsolve,mpi,dev]" $(NGSOLVE_OLDEST_PINS)
	@rm -f $(OLDEST_VENV)/.ngser-installed-ngsolve-*
	@touch $(OLDEST_STAMP)

# The demonstrations keep their files in demo-output/ (try `.venv/bin/ngser info` and `h5ls -r` on them).
demo: $(STAMP)
	$(PY) examples/tutorial.py demo-output/tutorial
	$(PY) examples/heat_checkpoint.py demo-output/heat
	@echo "files in demo-output/: try .venv/bin/ngser info demo-output/tutorial/gridfunction.h5"

# The whole suite under the newest NGSolve, then the NGSolve tests under the oldest.
test: $(STAMP)
	$(PY) -m pytest
	@$(MAKE) --no-print-directory test-ngsolve-oldest

test-ngsolve-oldest: $(OLDEST_STAMP)
	$(OLDEST_PY) -m pytest $(OLDEST_TESTS)

# Add the cross-version fixtures of the oldest NGSolve (tests/fixtures/make_fixtures.py only adds files).
fixtures-ngsolve-oldest: $(OLDEST_STAMP)
	$(OLDEST_PY) tests/fixtures/make_fixtures.py

bench: $(STAMP)
	$(PY) bench/run.py

lint: $(STAMP)
	$(PY) -m ruff check src tests bench examples
	$(PY) -m ruff format --check src tests bench examples
	$(PY) -m mypy

clean:
	rm -rf $(VENV) $(OLDEST_VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .hypothesis demo-output
