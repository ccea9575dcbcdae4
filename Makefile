# Two entry points for a fresh machine with Python 3.11, Java 17+ and Maven: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KAFKA  := .kafka/libs/.installed

.PHONY: install demo up test bench clean

install: $(STAMP) $(KAFKA)

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
