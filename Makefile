# Two commands on a fresh machine: `make run` (demo data + the window) and `make test`.
# Both create and reuse .venv and install with constraints.txt (CPU torch, PySide6 below 6.12).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
DEMO := demo-data
SCREENSHOT := medviewer-demo.png
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test test-quick bench screenshots package clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)

$(DEMO)/ground_truth.json: | $(STAMP)
	$(BIN)/medviewer demo-data $(DEMO)

# With no display, render the window offscreen to a PNG instead of opening it.
run: $(STAMP) $(DEMO)/ground_truth.json
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		$(BIN)/medviewer $(DEMO)/ct $(DEMO)/slide.tiff; \
	else \
		echo "No display found: rendering the window offscreen."; \
		QT_QPA_PLATFORM=offscreen $(BIN)/medviewer --screenshot $(SCREENSHOT) $(DEMO)/ct $(DEMO)/slide.tiff $(DEMO)/ct2; \
	fi

# Lint, the layer contracts, types (strict on core, io, ai and actions), then every test.
test: $(STAMP)
	$(BIN)/ruff check medviewer tests packaging
	$(BIN)/lint-imports
	$(BIN)/mypy
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

# The same without the slow tests (demo-model training and runs, the mutation corpus): a few minutes.
test-quick: $(STAMP)
	$(BIN)/ruff check medviewer tests packaging
	$(BIN)/lint-imports
	$(BIN)/mypy
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tests.benchmarks.startup
	$(BIN)/python -m tests.benchmarks.volume_load
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tests.benchmarks.volume_view
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tests.benchmarks.slide_view
	$(BIN)/python -m tests.benchmarks.catalog_import
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m tests.benchmarks.inference
	$(BIN)/python -m tests.benchmarks.dicom_zoo

# The README's viewer screenshots, made from the demo data through the viewer's own calls.
screenshots: $(STAMP) $(DEMO)/ground_truth.json
	QT_QPA_PLATFORM=offscreen $(BIN)/python packaging/readme_screenshot.py $(DEMO) resources/screenshots

package: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[package]'
	$(BIN)/pyinstaller --noconfirm --clean --distpath dist --workpath build packaging/medviewer.spec
	@du -sh dist/medviewer

clean:
	rm -rf build dist .pytest_cache .ruff_cache
