# Each target sets itself up: a .venv with the pinned CPU torch (constraints.txt) and the
# report viewer's NiiVue bundle (npm ci: the exact version in package-lock.json), then runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NIIVUE := node_modules/@niivue/niivue/dist/niivue.umd.js

.PHONY: demo test lint bench setup clean niivue-asset screenshot

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

$(NIIVUE): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NIIVUE)

setup: $(STAMP) $(NIIVUE)

# copies the bundle into the package (git-ignored), so a wheel built afterwards carries the viewer
niivue-asset: $(NIIVUE)
	mkdir -p src/volseg/report/assets
	cp $(NIIVUE) src/volseg/report/assets/niivue.umd.js

demo: $(STAMP) $(NIIVUE)
	$(BIN)/volseg demo --run-dir runs/demo

# the README's picture: the browser test's checks run on the demo's report, which it photographs
screenshot: $(STAMP) $(NIIVUE)
	test -f runs/demo/report.html || $(MAKE) demo
	VOLSEG_REPORT_HTML=runs/demo/report.html VOLSEG_REPORT_SCREENSHOT=docs/report.png \
		$(BIN)/pytest -q -p no:cacheprovider tests/report/test_report_browser.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: $(STAMP) $(NIIVUE) lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info node_modules src/volseg/report/assets
