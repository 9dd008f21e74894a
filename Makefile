# make test   - install into .venv, run the test suite, then ruff and mypy (what CI runs)
# make test-fast - the same venv; the tests that start no emulator, Hypothesis' quick profile (under a minute)
# make demo   - the whole flow on the local DataSync emulator, no AWS account needed
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-fast demo
# The stamp holds the checkout the venv was installed from: a venv copied from another
# checkout would import that checkout's code through its editable install, so reinstall.
ifneq ($(shell cat $(STAMP) 2>/dev/null),$(CURDIR))
.PHONY: $(STAMP)
endif
$(STAMP): pyproject.toml requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt -e '.[test]'
	echo '$(CURDIR)' > $@

# Hypothesis profiles (tests/profiles.py): test runs the thorough one, as CI does; test-fast the quick one
# unless HYPOTHESIS_PROFILE says otherwise.
test: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -q --durations=15
	$(PY) -m ruff check .
	$(PY) -m mypy

test-fast: $(STAMP)
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-quick} $(PY) -m pytest -q -m "not e2e"

demo: $(STAMP)
	$(PY) -m emulator.demo
