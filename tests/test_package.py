import pytest

import batchframe
from batchframe import errors
from batchframe.cli.main import main


def test_all_is_honest():
    assert sorted(set(batchframe.__all__) - set(dir(batchframe))) == []
    public_classes = {name for name, obj in vars(batchframe).items() if isinstance(obj, type) and name[0] != "_"}
    assert sorted(public_classes - set(batchframe.__all__)) == []


def test_every_error_derives_from_the_base():
    classes = [obj for obj in vars(errors).values() if isinstance(obj, type) and issubclass(obj, Exception)]
    warned = [cls for cls in classes if issubclass(cls, Warning)]  # warnings are not raised: UserWarning's tree
    assert len(classes) - len(warned) >= 15 and all(issubclass(cls, UserWarning) for cls in warned)
    assert all(issubclass(cls, errors.BatchframeError) for cls in classes if cls not in warned)


@pytest.mark.parametrize("status,cls", [(401, "AuthenticationError"), (404, "NotFoundError"),
                                        (429, "RateLimitError"), (529, "OverloadedError"),
                                        (500, "ServerError"), (400, "APIError")])
def test_api_error_class_by_status(status, cls):
    assert errors.api_error_class(status).__name__ == cls


def test_api_error_message_names_status_type_and_request_id():
    exc = errors.NotFoundError("Message Batch msgbatch_x not found.", status=404,
                               error_type="not_found_error", request_id="req_1")
    assert str(exc) == "HTTP 404 not_found_error: Message Batch msgbatch_x not found. (request-id req_1)"


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"batchframe {batchframe.__version__}"
