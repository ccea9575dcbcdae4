"""Property-based fuzzing from `/openapi.json` (issue 11): Schemathesis generates requests for every
operation the API documents, valid ones and invalid ones, sent over HTTP to the running test stack
with a valid token of each role.

Every answer must be below 500, of the content type the document promises and, where the document
gives a schema for that status, shaped by it. Afterwards no dead letter may have been written and the
system must still answer end to end. Kept to a few examples per operation, derandomized, so it runs in
about a minute and the same way every time.
"""

from __future__ import annotations

import collections
import json
import uuid
from datetime import UTC, datetime

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (content_type_conformance, negative_data_rejection, not_a_server_error,
                                 response_schema_conformance, status_code_conformance)

from buyit.identity import mint
from tests.helpers import eventually, read_topic

pytestmark = pytest.mark.integration

ROLES = ("BUYER", "SELLER", "ADMIN")
EXAMPLES = 6  # per operation, role and mode: about 800 requests (many operations need fewer), ~40 s
REAL_EXAMPLES = 20  # the few operations about the seller's real things: these reach the deciders
SKIPPED = {
    ("GET", "/api/inventory/stream"): "a live stream never ends (its input is tested in test_catalog_inventory_api)",
    ("POST", "/api/catalog/images/upload-url"): "fetches whatever URL it is given (tested in test_image_fetch)",
}
CONFORMS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
CHECKS = {GenerationMode.POSITIVE: CONFORMS, GenerationMode.NEGATIVE: [*CONFORMS, negative_data_rejection]}


class Fuzz:
    """The stack's API, its OpenAPI document as Schemathesis reads it, and a registered caller per role."""

    def __init__(self, stack):
        self.stack = stack
        self.started = datetime.now(UTC)
        self.base_url = f"http://127.0.0.1:{stack.api_ports[0]}"
        self.session = requests.Session()
        self.schema = schemathesis.openapi.from_dict(self.session.get(f"{self.base_url}/openapi.json").json())
        self.statuses: collections.Counter = collections.Counter()  # what the fuzzing earned, for the log
        self.pending: collections.Counter = collections.Counter()  # 202s: each sat out the command wait
        self.tokens = {}
        for role in ROLES:
            token = mint(stack.settings, f"fuzz-{role.lower()}-{uuid.uuid4().hex[:8]}", role)
            r = self.session.post(f"{self.base_url}/api/users/me", json={}, headers=self.auth(token))
            assert r.status_code == 201, r.text
            self.tokens[role] = token
        self.real_ids = self._seller_world()

    def _seller_world(self) -> dict[str, str]:
        """Path parameters naming the SELLER's own things, so generated bodies reach its aggregates'
        deciders instead of stopping at a 404."""
        seller = self.auth(self.tokens["SELLER"])
        r = self.session.post(f"{self.base_url}/api/catalog/products", headers=seller, json={
            "sku": "FUZZ-REAL", "name": "Fuzzed", "priceCents": 100, "currency": "USD", "status": "ACTIVE"})
        assert r.status_code == 201, r.text
        pid, sid = r.json()["productId"], r.json()["sellerId"]
        eventually(lambda: self.session.get(f"{self.base_url}/api/inventory/stock/{pid}",
                                            headers=seller).status_code == 200, what="stock of the fuzzed product")
        return {"product_id": pid, "seller_id": sid, "account_id": f"SELLER_PAYABLE_{sid}"}

    @staticmethod
    def auth(token: str) -> dict:
        return {"Authorization": f"Bearer {token}"}

    def operations(self):
        for result in self.schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) not in SKIPPED:
                yield operation


@pytest.fixture(scope="module")
def fuzz(stack):
    f = Fuzz(stack)
    yield f
    f.session.close()


def _failures(fuzz: Fuzz, operation, role: str, mode: GenerationMode, path_parameters: dict | None = None,
              examples_each: int = EXAMPLES) -> str | None:
    """Run the operation's examples; the first contract break, described, or None."""
    headers = fuzz.auth(fuzz.tokens[role])

    @settings(max_examples=examples_each, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def examples(case):
        # a generated Authorization header would test the token checks, which test_access_rules does
        response = case.call(base_url=fuzz.base_url, session=fuzz.session, headers=headers, timeout=30)
        fuzz.statuses[response.status_code] += 1
        if response.status_code == 202:
            fuzz.pending[f"{operation.method.upper()} {operation.path}"] += 1
        case.validate_response(response, checks=CHECKS[mode], headers=headers)

    try:
        examples()
    except Unsatisfiable:  # negative mode, where the operation has no input that can be made invalid
        return None
    except (Exception, BaseExceptionGroup) as err:  # a check's failure group, or no answer: both are findings
        return f"{operation.method.upper()} {operation.path} as {role} ({mode.value}):\n{err}"[:3000]
    return None


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("role", ROLES)
def test_every_operation_keeps_the_contract(fuzz, role, mode):
    found = [f for op in fuzz.operations() if (f := _failures(fuzz, op, role, mode))]
    assert not found, f"{len(found)} operations broke the contract:\n\n" + "\n\n".join(found)


def test_the_sellers_own_things_keep_the_contract(fuzz):
    """Valid requests about the seller's real product, stock and payable account: past the lookups,
    into the catalog and inventory deciders."""
    found = []
    for op in fuzz.operations():
        real = {k: v for k, v in fuzz.real_ids.items() if "{%s}" % k in op.path}
        if real and (f := _failures(fuzz, op, "SELLER", GenerationMode.POSITIVE, real, REAL_EXAMPLES)):
            found.append(f)
    assert not found, f"{len(found)} operations broke the contract:\n\n" + "\n\n".join(found)


def test_afterwards_no_dead_letters_and_the_system_answers(fuzz, stack):
    print(f"\nfuzzed requests by status: {dict(sorted(fuzz.statuses.items()))}; 202 from {dict(fuzz.pending)}")
    stack.supervisor.check_alive()
    base, seller = fuzz.base_url, fuzz.auth(fuzz.tokens["SELLER"])
    assert fuzz.session.get(f"{base}/health").status_code == 200
    r = fuzz.session.post(f"{base}/api/catalog/products", headers=seller, json={
        "sku": f"AFTER-{uuid.uuid4().hex[:6]}", "name": "After the fuzz", "priceCents": 100, "currency": "USD"})
    assert r.status_code == 201, r.text
    pid = r.json()["productId"]
    eventually(lambda: fuzz.session.get(f"{base}/api/inventory/stock/{pid}", headers=seller).status_code == 200,
               what="the product's stock projected")
    dead = [d for d in read_topic(stack.settings_for_children().brokers, "dead.letters")
            if datetime.fromisoformat(d["at"]) >= fuzz.started]
    assert dead == [], json.dumps(dead, indent=1)[:4000]
