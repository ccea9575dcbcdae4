# Two entry points for a fresh machine with Python 3.11, Java 17+ and Maven: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KAFKA  := .kafka/libs/.installed

.PHONY: install browser demo up test bench clean

install: $(STAMP) $(KAFKA) browser

# Chromium for the dashboard's browser test (Playwright drives the system's, it downloads none). Installed
# with apt-get as root (or passwordless sudo); elsewhere a warning, and that one test skips saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if ! command -v apt-get >/dev/null 2>&1; then echo "WARNING: no chromium and no apt-get: the browser test will skip"; \
	  elif [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; } \
	    || echo "WARNING: apt-get could not install chromium: the browser test will skip"; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get install -y -q chromium || { sudo apt-get update -q && sudo apt-get install -y -q chromium; } \
	    || echo "WARNING: apt-get could not install chromium: the browser test will skip"; \
	  else echo "WARNING: chromium missing and not root: install it (apt-get install chromium) or the browser test skips"; fi; }

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

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench.hot_sku
	$(BIN)/python -m bench.roundtrip
	$(BIN)/python -m bench.checkout

clean:
	rm -rf $(VENV) .kafka .buyit
