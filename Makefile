# Two entry points for a fresh machine with Python 3.11, Java 17+ and Maven: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KAFKA  := .kafka/libs/.installed

.PHONY: install test-tools demo up test bench clean

install: $(STAMP) $(KAFKA)

# Tools some tests drive, from the system's packages: Chromium for the dashboard's browser test (Playwright
# drives the system's, it downloads none) and kcat, a second Kafka client reading our topics. Installed with
# apt-get as root (or passwordless sudo); elsewhere a warning, and the tests that need them skip saying why.
# Only `make test` needs them: `make demo` does not download a browser.
TEST_TOOLS := chromium kcat
test-tools:
	@missing=""; for tool in $(TEST_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "WARNING: missing$$missing and no apt-get: tests needing them skip"; \
	  elif [ "$$(id -u)" = 0 ]; then apt-get install -y -q $$missing || { apt-get update -q && apt-get install -y -q $$missing; } \
	    || echo "WARNING: apt-get could not install$$missing: tests needing them skip"; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get install -y -q $$missing || { sudo apt-get update -q && sudo apt-get install -y -q $$missing; } \
	    || echo "WARNING: apt-get could not install$$missing: tests needing them skip"; \
	  else echo "WARNING: missing$$missing and not root: apt-get install$$missing, or tests needing them skip"; fi; fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# Apache Kafka's jars (broker, KRaft controller, log4j2) from Maven Central, run on the machine's Java.
$(KAFKA): broker/pom.xml
	rm -rf .kafka/libs
	mvn -B -q -f broker/pom.xml org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
	    -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.kafka/libs
	touch $(KAFKA)

demo: install
	$(BIN)/buyit demo

up: install
	$(BIN)/buyit up

test: install test-tools
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench.hot_sku
	$(BIN)/python -m bench.roundtrip
	$(BIN)/python -m bench.checkout
	$(BIN)/python -m bench.snapshot

clean:
	rm -rf $(VENV) .kafka .buyit
