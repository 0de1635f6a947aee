# The README's commands: `make run` serves the demo on http://127.0.0.1:5000, `make test` runs everything CI runs.
# Installs go through constraints.txt, so every machine gets the versions the tests passed with; a stamp in the
# virtual environment makes a second run skip pip unless setup.cfg or constraints.txt changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_INSTALL := $(PIP) install --disable-pip-version-check --quiet -c constraints.txt
# Debian packages the tests use for real components (see the test bed notes): sshd for test hosts, network
# namespaces and loss injection, reference pings, Prometheus with promtool, Alertmanager with amtool, a browser.
DEBIAN_PACKAGES := openssh-server iproute2 nftables iputils-ping fping prometheus prometheus-alertmanager chromium
INSTALL_INPUTS := setup.cfg constraints.txt pyproject.toml

.PHONY: run test lint pytest debian-packages translations messages bench freeze clean

run: $(VENV)/.installed-run translations
	$(BIN)/vcops db upgrade
	$(BIN)/vcops seed-demo --if-empty
	$(BIN)/vcops serve

test: debian-packages $(VENV)/.installed-dev translations lint pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

pytest: $(VENV)/.installed-dev translations
	$(BIN)/pytest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check --quiet --upgrade pip

$(VENV)/.installed-run: $(INSTALL_INPUTS) | $(BIN)/python
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-dev: $(INSTALL_INPUTS) | $(BIN)/python
	$(PIP_INSTALL) -e '.[dev]'
	touch $@ $(VENV)/.installed-run

# Compiled catalogues (.mo) are build output; compile whatever .po files exist (none is fine).
translations: $(VENV)/.installed-run
	@if ls app/translations/*/LC_MESSAGES/*.po >/dev/null 2>&1; then \
		$(BIN)/pybabel -q compile -d app/translations; \
	fi

# For translators: gather the interface's strings and merge them into the Vietnamese catalogue.
messages: $(VENV)/.installed-run
	$(BIN)/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext -o $(VENV)/messages.pot .
	if [ -f app/translations/vi/LC_MESSAGES/messages.po ]; then \
		$(BIN)/pybabel -q update --no-fuzzy-matching --ignore-obsolete --width=120 -i $(VENV)/messages.pot -d app/translations -l vi; \
	else \
		$(BIN)/pybabel -q init -i $(VENV)/messages.pot -d app/translations -l vi; \
	fi

# As root, install the missing Debian packages (apt-get update once, only when something is missing).
# Elsewhere, say what is missing: those tests skip with a reason (and fail in CI).
debian-packages:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -ne 0 ]; then \
		echo "not root: Debian packages$$missing are missing; the tests that need them will skip"; exit 0; \
	fi; \
	echo "installing Debian packages:$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing

bench: $(VENV)/.installed-dev
	@for f in bench/*.py; do \
		[ -e "$$f" ] || { echo "no benchmarks in bench/"; break; }; \
		echo "== $$f"; $(BIN)/python "$$f" || exit 1; \
	done

# Refresh the pins after changing setup.cfg: `make freeze`, run the tests, commit both files. Installed packages
# keep their versions, new ones come in at their newest; the file lists exactly what `.[dev]` needs (not whatever
# else was installed by hand to try something).
freeze: | $(BIN)/python
	$(PIP) install --disable-pip-version-check --quiet -e '.[dev]'
	$(PIP) freeze --disable-pip-version-check --exclude-editable > $(VENV)/installed.txt
	$(PIP) install --disable-pip-version-check --quiet --dry-run --ignore-installed \
		--report $(VENV)/resolved.json -c $(VENV)/installed.txt '.[dev]'
	$(BIN)/python -c 'import json; r = json.load(open("$(VENV)/resolved.json")); \
		pins = [i["metadata"]["name"] + "==" + i["metadata"]["version"] for i in r["install"]]; \
		print("# The exact versions the tests passed with; regenerate with make freeze."); \
		print("\n".join(sorted((p for p in pins if not p.startswith("vcops==")), key=str.lower)))' > constraints.txt
	touch $(VENV)/.installed-dev $(VENV)/.installed-run

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
