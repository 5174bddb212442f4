# Entry points for a fresh machine (see README):
#   make run    the main job on the embedded default: the whole study on the toy world (shipped toy CLIP), offline
#   make test   the test suite
#   make paper-smoke   the paper's workflow (config/paper.yaml's setup) on miniature data in the real formats, CPU
# Both create .venv and install the project into it first with its study and test extras (pip, pinned torch;
# WordNet and Chromium from Debian if missing). `pip install .` alone gives the library and the gradeclip command.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORDNET := /usr/share/wordnet/data.noun

.PHONY: install run demo test faithfulness paper-smoke system-deps clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[study,test]"
	touch $@

# WordNet for the lemma fallback of the concreteness study (nltk's downloader needs the internet; Debian ships it).
# Chromium for the test that renders the report in a real browser (headless; tests/browser_layout.py).
system-deps:
	@if [ ! -f $(WORDNET) ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null; \
	  else echo "note: WordNet not found ($(WORDNET)); install Debian's wordnet-base and wordnet-sense-index for lemma lookups"; fi; \
	fi
	@if ! command -v chromium >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium not found; install Debian's chromium for the report's browser test"; fi; \
	fi

install: $(STAMP) system-deps

# The whole study on the toy world (Snakemake, default profile: 2 cores) -> reports/report.html
run: install
	$(VENV)/bin/snakemake --cores 2

# A quick look at the method: maps and word importances for the bundled sample scene -> results/demo/
demo: install
	$(PY) -m gradeclip explain data/sample/toy_scene.png --model gradeclip-toy-ViT --pretrained data/toy_clip/gradeclip-toy-ViT.pt \
	  --text "a large red metal cube" --text "a small green sphere" --text "brown cylinder" --text-maps --out results/demo

test: install
	$(PY) -m pytest -q

# The faithfulness study (paper section IV) on the toy world, its own target (not part of make run) ->
# reports/faithfulness.html, reports/tables/{faithfulness_image,faithfulness_text,localization,layers,...}.csv
faithfulness: install
	$(VENV)/bin/snakemake faithfulness --cores 2

# The paper-mode DAG end to end on miniature data in the real formats with random weights (formats and wiring, not
# the paper's numbers): data/paper-mini/ (gradeclip mini-data), results-paper-mini/, reports-paper-mini/report.html,
# then RN50 through the explanation rules (results-paper-mini-rn50/). CPU; README "Running the paper's study".
paper-smoke: install
	$(PY) -m gradeclip mini-data --out data/paper-mini
	$(VENV)/bin/snakemake --cores 2 --configfile config/paper-mini.yaml
	$(VENV)/bin/snakemake explanations --cores 2 --configfile config/paper-mini.yaml config/paper-mini-rn50.yaml
	$(VENV)/bin/snakemake faithfulness --cores 2 --configfile config/paper-mini.yaml

clean-venv:
	rm -rf $(VENV)
