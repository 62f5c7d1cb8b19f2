# The two set-up commands: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Django 6 needs Python 3.12+; use the first one found (PATH, then pyenv's versions).
BOOT_PYTHON ?= $(shell for p in python3.13 python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3 2>/dev/null) python3; do \
	if $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then echo $$p; break; fi; done)

.PHONY: install demo test lint typecheck run clean

$(VENV)/.installed: requirements.txt
	@if [ -z "$(BOOT_PYTHON)" ]; then echo "tenure: error: Python 3.12 or newer is needed (install python3.12 or python3.13)"; exit 1; fi
	@echo "==> creating $(VENV) with $(BOOT_PYTHON) and installing requirements.txt"
	@[ -x $(PY) ] || $(BOOT_PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -r requirements.txt
	@touch $@

install: $(VENV)/.installed

demo: install
	@$(PY) manage.py demo $(DEMO_ARGS)

lint: install
	@echo "==> ruff"
	@$(VENV)/bin/ruff check .

typecheck: install
	@echo "==> mypy"
	@$(VENV)/bin/mypy config shops sync analytics devstore

test: install lint typecheck
	@echo "==> makemigrations --check"
	@DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py makemigrations --check --dry-run >/dev/null
	@echo "==> pytest"
	@mkdir -p var; $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache
