"""gateway/observability.py `redact`: no log line shows a token, however a client wrote it (as sent,
percent-encoded any way, JSON-escaped, inside a query parameter named like a credential)."""

from __future__ import annotations

from urllib.parse import quote

from gateway.observability import REDACTED, never_log, redact

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
