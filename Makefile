# The README's two commands: `make demo` and `make test`. Both set up everything they need.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin
SNAKEMAKE := $(BIN)/snakemake
# The demo builds on the lab's config: a config file on the command line replaces it unless named.
DEMO := --configfile config/config.yaml config/demo.yaml --cores $(CORES)
# Tasks 8-9 need VGG16's ImageNet weights. Offline, a seeded random VGG16 stands in for them: the
# workflow runs the same way, and the task 9 summary says the features are not ImageNet's.
STANDIN := data/demo/vgg16-random-standin.weights.h5
DEMO_WEIGHTS = $$(test -e $(STANDIN) && echo --config imagenet_weights=$(STANDIN))

.PHONY: install install-profile demo-data demo-weights demo test lint format clean

install: $(VENV)/.installed

# CPU TensorFlow; on a GPU machine use `$(BIN)/pip install -e '.[gpu]'` instead.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# For the short form `snakemake --profile slurm` (searched in ~/.config/snakemake).
install-profile:
	mkdir -p $(HOME)/.config/snakemake
	cp -r profiles/slurm $(HOME)/.config/snakemake/

# Generated, seeded demo images in the real layout, with a test/ split (does nothing if they are there).
demo-data: install
	$(BIN)/python -m cnnreg.synthetic data/demo --n-test 60

# ImageNet weights into Keras' cache (checked, not downloaded again), or else the stand-in.
demo-weights: install demo-data
	$(BIN)/python -m cnnreg.weights stage && rm -f $(STANDIN) || test -e $(STANDIN) \
		|| $(BIN)/python -m cnnreg.weights random $(STANDIN)

demo: install demo-data demo-weights
	$(SNAKEMAKE) $(DEMO) $(DEMO_WEIGHTS)
	$(SNAKEMAKE) $(DEMO) $(DEMO_WEIGHTS) --report results/report.html
	@echo "Report: $(abspath results/report.html)"

lint: install demo-data
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(SNAKEMAKE) --lint $(DEMO)

test: install lint
	$(BIN)/pytest -ra

format: install
	$(BIN)/ruff format .
	$(BIN)/snakefmt .

clean:
	rm -rf results logs benchmarks .snakemake
