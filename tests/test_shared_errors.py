"""The error envelope: the hub builds it, the agent reads it, from one definition."""

from __future__ import annotations

import json

from hub.errors import ApiError, error_body
from shared.errors import ErrorBody, decode_error, encode_error


def test_hub_envelope_reads_back_on_the_agent_side() -> None:
    details = [{"seq": 7, "field": "ts", "message": "too old"}, {"alert_id": 3, "field": "x"}]
    body = error_body(ApiError(422, "validation_error", "2 problem(s)", details), "req_1")
    doc = json.loads(body)
    assert list(doc) == ["error", "meta"]
    assert list(doc["error"]) == ["code", "message", "details"]
    assert doc["meta"]["request_id"] == "req_1"
    err = decode_error(body)
    assert err == ErrorBody("validation_error", "2 problem(s)", details)
    assert err.seqs() == {7: [details[0]]}
    assert err.alert_ids() == {3}


def test_seqs_group_every_detail_of_one_reading_in_order() -> None:
    a, b, c = {"seq": 2, "field": "key"}, {"seq": 1}, {"seq": 2, "field": "ts"}
    err = ErrorBody("validation_error", "x", [a, b, c, {"seq": True}, {"seq": "3"}])
    assert list(err.seqs().items()) == [(2, [a, c]), (1, [b])]


def test_what_is_not_an_envelope_is_none() -> None:
    for body in (b"<html>bad gateway</html>", b"", b'{"error": "x"}', b"[1]", b'{"data": {}}'):
        assert decode_error(body) is None


def test_encode_error_is_the_shape_clients_see() -> None:
    body = encode_error(ErrorBody("not_found", "gateway x not found"), {"request_id": "r"})
    assert json.loads(body) == {
        "error": {"code": "not_found", "message": "gateway x not found", "details": []},
        "meta": {"request_id": "r"},
    }
