# actinf: the two commands a newcomer runs on a fresh machine (Python 3.11).
#   make demo   creates .venv-demo, installs actinf with plotting, runs the T-maze demo
#   make test   creates .venv-test, installs actinf with test tools, runs the tests
PYTHON ?= python3
DEMO_VENV := .venv-demo
TEST_VENV := .venv-test

.PHONY: demo test test-slow lint spm-check clean

$(DEMO_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(DEMO_VENV)/bin/python -m pip install --quiet -e ".[plot]"
	touch $@

$(TEST_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TEST_VENV)
	$(TEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TEST_VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

demo: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/python examples/tmaze_demo.py --out out

test: $(TEST_VENV)/.installed
	$(TEST_VENV)/bin/python -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider

test-slow: $(TEST_VENV)/.installed
	$(TEST_VENV)/bin/python -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider -m slow

lint: $(TEST_VENV)/.installed
	$(TEST_VENV)/bin/ruff check src tests examples

spm-check: $(TEST_VENV)/.installed
	$(TEST_VENV)/bin/actinf spm run --check tests/data/vbx --out out/spm

clean:
	rm -rf $(DEMO_VENV) $(TEST_VENV) out .pytest_cache
