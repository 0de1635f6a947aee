"""A client that uses the wrong method hears which ones the address takes (RFC 9110: 405 carries Allow)."""

from __future__ import annotations


def _allowed(response) -> set[str]:
    return {method.strip() for method in response.headers["Allow"].split(",")}


def test_a_page_refusing_the_method_says_which_methods_it_takes(client):
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.mimetype == "text/html"
    assert {"GET", "HEAD"} <= _allowed(response)
    assert "POST" not in _allowed(response)


def test_the_api_refusing_the_method_answers_the_one_format_with_allow(api):
    response = api("admin").delete("/api/v1/sites")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert {"GET", "POST"} <= _allowed(response)
    assert "DELETE" not in _allowed(response)
