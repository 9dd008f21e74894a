# make test   - install into .venv and run the test suite (what CI runs)
# make demo   - the whole flow on the local DataSync emulator, no AWS account needed
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test demo
$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

test: $(VENV)/.installed
	$(PY) -m pytest -q

demo: $(VENV)/.installed
	$(PY) -m emulator.demo
