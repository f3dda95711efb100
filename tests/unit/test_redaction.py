"""gateway/observability.py `redact`: no log line shows a token, however a client wrote it (as sent,
percent-encoded any way, JSON-escaped, inside a query parameter named like a credential)."""

from __future__ import annotations

import secrets
from urllib.parse import quote

from gateway.observability import REDACTED, never_log, redact, without_tokens
from models.tokens import SECRET_BYTES

TOKEN = 's3cr"3t-Tok/en'


def setup_module() -> None:
    never_log([TOKEN])


def test_a_token_is_redacted_as_sent_percent_encoded_or_json_escaped() -> None:
    for written in (TOKEN, quote(TOKEN, safe=""), quote(TOKEN), TOKEN.replace('"', '\\"')):
        line = redact(f'GET /tracking/task/1?x={written} 200 {{"error": "{written}"}}')
        assert written not in line, written
        assert line.count(REDACTED) == 2, line


def test_a_token_percent_encoded_character_by_character_is_found() -> None:
    odd = "".join(f"%{ord(char):02X}" if index % 2 or char == '"' else char for index, char in enumerate(TOKEN))
    assert REDACTED in redact(f"path /x/{odd} done")


def test_a_credential_parameter_is_redacted_even_when_it_is_no_configured_token() -> None:
    line = redact("GET /graphql?access_token=mistyped&api_key=k1&query=x")
    assert "mistyped" not in line and "k1" not in line
    assert "query=x" in line


def test_a_line_without_a_token_is_left_as_it_is() -> None:
    line = "GET /tracking/task/1 200 %41 100%"
    assert redact(line) == line


def test_a_named_token_s_secret_is_redacted_known_or_not() -> None:
    """This process keeps only named tokens' hashes: their secrets are recognised by their shape (models.tokens
    makes each from 32 random bytes, base64url), in a path, a query or percent-encoded."""
    for _ in range(50):
        secret = secrets.token_urlsafe(SECRET_BYTES)
        encoded = "".join(f"%{ord(char):02X}" for char in secret[:4]) + secret[4:]
        for written in (secret, encoded):
            line = redact(f"GET /tracking/{written}/task/roots?q={written} 200 caller=team-a")
            assert secret not in line and secret[4:] not in line, line
            assert line.count(REDACTED) == 2, line
        assert without_tokens(f"/tracking/{secret}/task/roots") == f"/tracking/{REDACTED}/task/roots"


def test_words_of_a_secret_s_length_in_one_case_are_left_alone() -> None:
    """A 43-character identifier or digest in a message is not taken for a secret: one needs both cases."""
    for word in ("test_a_standby_writer_that_failed_is_ready_", "0123456789abcdef0123456789abcdef0123456789a"):
        assert len(word) == 43
        assert redact(f"in {word} at line 3") == f"in {word} at line 3"
