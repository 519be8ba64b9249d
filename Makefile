# Two commands do everything: `make demo` and `make test`. Both create .venv when it is missing.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.pkd-installed
PYTHON ?= python3

.PHONY: demo test lint bench clean

# torch first, pinned to the CPU wheel: a bare torch requirement would pull a multi-GB CUDA build.
# The export extra (onnx, onnxruntime) serves the demo's deploy step and the export tests.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,export]'
	@touch $(STAMP)

# Two workers, each test file on one of them: the suite's CPU time (about 4.5 min) then fits in under 3 minutes.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -n auto --dist loadfile

demo: $(STAMP)
	bash bench/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	bash bench/real_results.sh

clean:
	rm -rf $(VENV) runs
