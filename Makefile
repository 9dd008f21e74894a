# make test   - install into .venv, run the test suite, then ruff and mypy (what CI runs)
# make demo   - the whole flow on the local DataSync emulator, no AWS account needed
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo
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

test: $(STAMP)
	$(PY) -m pytest -q
	$(PY) -m ruff check .
	$(PY) -m mypy

demo: $(STAMP)
	$(PY) -m emulator.demo
