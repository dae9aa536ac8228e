"""roundtable.web.forms: one reading of a POSTed form for the action pages and the desk."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.requests import Request

from roundtable.web.forms import BadForm, read_form

MULTI = {"months", "serves"}
URLENCODED = "application/x-www-form-urlencoded"


def _read(body: bytes, content_type: str = URLENCODED):
    """read_form in a thread of its own: the browser tests' Playwright keeps an event loop in the main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read_form(_request(body, content_type), MULTI)).result()


def _request(body: bytes, content_type: str = URLENCODED) -> Request:
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", content_type.encode()),
                                                                         (b"content-length", str(len(body)).encode())]}
    return Request(scope, receive)


def test_fields_that_take_several_are_lists_the_others_their_last_value():
    body = b"title=one&title=two&months=3&months=4&why=%E0%BA%AA%E0%BA%B0+x&empty="
    assert _read(body) == (
        {"title": "two", "months": ["3", "4"], "why": "ສະ x", "empty": ""}, {})


def test_too_many_fields_is_a_bad_form_either_way():
    body = "&".join(f"f{i}=x" for i in range(201)).encode()
    with pytest.raises(BadForm):
        _read(body)


def test_an_upload_goes_through_starlette():
    body = (b"--B\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nt\r\n--B\r\nContent-Disposition: form-data; "
            b"name=\"file\"; filename=\"minutes.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4 x\r\n--B--\r\n")
    form, files = _read(body, "multipart/form-data; boundary=B")
    assert form == {"csrf": "t"} and files == {"file": ("minutes.pdf", b"%PDF-1.4 x")}
