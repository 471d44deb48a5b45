"""No secret value, written in the spec or taken from the environment, reaches any output or error."""

from __future__ import annotations

import sys

import pytest

from batchai_spec.cli import main
from batchai_spec.spec import SpecError, load_spec
from tests.spec.sample import VALID_SPEC, edited, write_spec

IN_TEXT = "Hunter2-in-the-spec-text"
IN_ENV = "Swordfish-from-the-env"
SECRET_SPEC = edited(
    "node_count: 1\n",
    "node_count: 1\n"
    f"        secrets: {{TOKEN: {IN_TEXT}, KEY: '{{{{ env.BATCHAI_SPEC_TEST_KEY }}}}'}}\n"
    "        container:\n"
    "          image: r.io/train:1\n"
    f"          registry: {{server_url: r.io, username: u, password: '{{{{ env.BATCHAI_SPEC_TEST_KEY }}}}'}}\n",
    edited("      {admin_user_name: demo, ssh_public_key: ssh-ed25519 AAAAtest}\n", f"      admin_user_name: demo\n      admin_user_password: {IN_TEXT}\n", VALID_SPEC),
)

BREAKAGES = [
    ("typo-next-to-secret", ("admin_user_password:", "admin_user_pasword:")),
    ("secret-of-wrong-type", (f"TOKEN: {IN_TEXT}", "TOKEN: [1, 2]")),
    ("secret-under-unknown-key", ("        secrets:", "        secret:")),
    ("yaml-error-on-the-secret-line", (f"admin_user_password: {IN_TEXT}", f"admin_user_password: {IN_TEXT}: x")),
    ("template-error-using-the-env-secret", ("name: t\n", "name: {{ env.BATCHAI_SPEC_TEST_KEY + 1 }}\n")),
    ("bad-value-next-to-secrets", ("node_count: 1", "node_count: -1")),
]


@pytest.fixture(autouse=True)
def secret_in_env(monkeypatch):
    monkeypatch.setenv("BATCHAI_SPEC_TEST_KEY", IN_ENV)


def assert_no_secret(text: str) -> None:
    assert IN_TEXT not in text and IN_ENV not in text


def test_secrets_load_but_never_show(tmp_path):
    spec = load_spec(write_spec(tmp_path, SECRET_SPEC)).spec
    job = spec.experiments[0].jobs[0]
    assert job.secrets["KEY"].get_secret_value() == IN_ENV
    assert job.container.registry.password.get_secret_value() == IN_ENV
    for shown in (repr(spec), str(spec), spec.model_dump_json(), str(spec.model_dump()), repr(job)):
        assert_no_secret(shown)


@pytest.mark.parametrize(("old", "new"), [case[1] for case in BREAKAGES], ids=[case[0] for case in BREAKAGES])
def test_errors_never_quote_secrets(tmp_path, old, new):
    with pytest.raises(SpecError) as raised:
        load_spec(write_spec(tmp_path, edited(old, new, SECRET_SPEC)))
    assert raised.value.message.startswith(str(tmp_path))
    assert_no_secret(raised.value.message)


def test_validate_output_has_no_secret(tmp_path, monkeypatch, capsys):
    path = write_spec(tmp_path, SECRET_SPEC)
    for args in (["validate", str(path)], ["validate", str(path), "--var", f"unused={IN_TEXT}x"]):
        monkeypatch.setattr(sys, "argv", ["batchai-spec", *args])
        main()
        captured = capsys.readouterr()
        assert "valid" in captured.out
        assert_no_secret(captured.out + captured.err)
