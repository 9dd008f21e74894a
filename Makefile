# make demo      - the whole flow on the local DataSync emulator, no AWS account needed: installs boto3 only
# make emulator  - the emulator alone with a sample share, for a session by hand: prints the lines to paste
# make test      - install the development set too, run the test suite, then ruff and mypy (what CI runs)
# make test-fast - the same venv; the tests that start no emulator, Hypothesis' quick profile (under a minute)
# PYTHON=python3.11 picks the interpreter the venv is made with (3.10 or newer; default python3).
PYTHON_GIVEN := $(filter-out undefined default,$(origin PYTHON))
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo emulator test test-fast
# The run stamp holds what the venv was made for: this checkout and an interpreter. It is made anew when there is
# none, when it was made for another checkout (it would import that checkout's code through its editable install),
# or when PYTHON names another interpreter than it was made with; without PYTHON, the venv keeps its own.
STAMPED := $(shell cat $(RUN_STAMP) 2>/dev/null)
MADE_FOR := $(CURDIR) $(shell command -v $(PYTHON))
REMAKE :=
ifneq ($(firstword $(STAMPED)),$(CURDIR))
REMAKE := yes
else ifneq ($(PYTHON_GIVEN),)
ifneq ($(STAMPED),$(MADE_FOR))
REMAKE := yes
endif
endif
ifeq ($(REMAKE),yes)
.PHONY: $(RUN_STAMP)
endif

# What the demo and the emulator need: boto3 (with botocore, whose model the emulator serves). The checkout's
# code runs from the checkout, so the project itself is not installed here.
$(RUN_STAMP): requirements.txt
ifeq ($(REMAKE),yes)
	@$(PYTHON) -m datasync_multi.entry make $(MAKECMDGOALS)
	$(PYTHON) -m venv --clear $(VENV)
endif
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	echo '$(if $(REMAKE),$(MADE_FOR),$(STAMPED))' > $@

# The development set: the project in editable mode with its test extra, ruff and mypy.
$(DEV_STAMP): $(RUN_STAMP) pyproject.toml requirements-dev.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -e '.[test]'
	touch $@

demo: $(RUN_STAMP)
	$(PY) -m emulator.demo

emulator: $(RUN_STAMP)
	$(PY) -m emulator --quickstart emulator-run

# Hypothesis profiles (tests/profiles.py): test runs the thorough one, as CI does; test-fast the quick one
# unless HYPOTHESIS_PROFILE says otherwise.
test: $(DEV_STAMP)
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -q -n 4 --durations=15
	$(PY) -m ruff check .
	$(PY) -m mypy

test-fast: $(DEV_STAMP)
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-quick} $(PY) -m pytest -q -m "not e2e"
