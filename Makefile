# Two commands for a newcomer: `make demo` and `make test`. Both build their own environment.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := demo-output

.PHONY: demo test lint typecheck unit venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU build of torch, pinned so that set-up does not pull several GB of CUDA wheels.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[sample,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/atmorep sample --out $(DEMO)/grib --ifs-like 24
	$(BIN)/atmorep prepare "$(DEMO)/grib/*.grib" --store $(DEMO)/sample.zarr
	$(BIN)/atmorep info $(DEMO)/sample.zarr
	$(BIN)/atmorep model recipes/demo.yaml
	$(BIN)/atmorep train recipes/demo.yaml --run-dir $(DEMO)/run --restart
	$(BIN)/atmorep forecast --checkpoint $(DEMO)/run --init 2020-02-01T12 --lead 12h --members 4 \
	  --out $(DEMO)/forecast --plot temperature --plot velocity_u
	$(BIN)/atmorep correct --ifs $(DEMO)/grib/ifs_fc_20200201T00.grib2 --checkpoint $(DEMO)/run \
	  --mode forecast --truth $(DEMO)/sample.zarr -o $(DEMO)/correct/ifs_fc_20200201T00.grib2

lint: $(STAMP)
	$(BIN)/ruff check atmorep_core atmorep_cli tests benchmarks
	$(BIN)/ruff format --check atmorep_core atmorep_cli tests benchmarks
	$(BIN)/lint-imports --no-cache  # the layers and contracts in pyproject.toml

typecheck: $(STAMP)
	$(BIN)/mypy atmorep_core atmorep_cli

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

clean:
	rm -rf $(VENV) $(DEMO)
