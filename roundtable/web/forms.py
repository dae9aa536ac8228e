"""A POSTed form as the pages use it: ({field: text, or a list for fields that take several}, {field: (file name,
bytes)}). One reader for the action pages and the desk."""

from starlette.requests import Request

from roundtable.web.security import TooLarge

MAX_FIELDS = 200


class BadForm(ValueError):
    """A body that is no form (or has too many fields): the sender's problem, answered plainly."""


async def read_form(request: Request, multi: set[str]) -> tuple[dict, dict]:
    try:
        data = await request.form(max_files=1, max_fields=MAX_FIELDS)
    except TooLarge:
        raise  # the Guard answers 413
    except Exception as exc:  # noqa: BLE001 - whatever the parser raised, a malformed body is a BadForm
        raise BadForm(str(exc)) from None
    form = {key: (data.getlist(key) if key in multi else value) for key, value in data.items() if isinstance(value, str)}
    files = {key: (value.filename or "", await value.read()) for key, value in data.items() if not isinstance(value, str)}
    await data.close()
    return form, files
