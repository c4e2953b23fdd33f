# Two commands for a fresh machine (Python 3.11+ needed): `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Installs take the tested versions from constraints.txt (pyproject.toml only sets floors).
$(VENV)/.installed-run: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@ $(VENV)/.installed-run

## Install what the bot needs and start it (settings from the environment or .env). Without a
## BOT_TOKEN: the playground, the bot against an emulated Telegram in a browser.
run: $(VENV)/.installed-run
	@if $(BIN)/python -c 'import sys; from bot.config import bot_token_given; sys.exit(not bot_token_given())'; \
	then exec $(BIN)/python -m bot; else exec $(BIN)/python -m bot.playground; fi

## Install the test tools, then lint, type-check and run every test.
test: $(VENV)/.installed-dev lint
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
