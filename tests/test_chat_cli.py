"""chat, logs and generate as a user drives them: typed lines in, what the screen and the log show."""

from __future__ import annotations

import io
import json
import sys

from drift_local.store.store import Pair, Store


def chat(cli, monkeypatch, lines: list[str], *args: str):
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(line + "\n" for line in lines)))
    return cli("chat", *args)


def test_a_chat_session_with_system_set_save_and_resume(cli, monkeypatch, tiny_gguf, tmp_path):
    model = ("--llm", str(tiny_gguf), "--max-tokens", "6", "--seed", "1")
    result = chat(cli, monkeypatch, [
        "/system You are terse [really].", "/set temperature 0.3", "/set", "/beta", "/set top_p 2",
        "hello there", f"/save {tmp_path}/missing/x.md", "/save " + str(tmp_path / "x.json"), "/bye",
    ], *model, "--beta", "0.7")
    assert result.code == 0, result.err
    assert "system: You are terse [really]." in result.out
    assert "temperature 0.3" in result.out and "β = 0.7" in result.out
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "top_p must be" in errors[0] and "cannot write" in errors[1] and "missing" in errors[1]
    saved = json.loads((tmp_path / "x.json").read_text())
    assert [m["role"] for m in saved] == ["user", "assistant"]  # the chat went on after the failed /save

    found = cli("logs", "-q", "hello", "--json")
    [conversation] = json.loads(found.out)
    assert conversation["first_prompt"] == "hello there" and conversation["meta"]["command"] == "chat"
    assert cli("logs", "-q", "no such words").out.startswith("no logged conversations")

    resumed = chat(cli, monkeypatch, ["/system", "/beta", "and more", "/bye"], *model, "--resume", str(conversation["id"]))
    assert resumed.code == 0, resumed.err
    assert "continuing: 2 earlier messages" in resumed.out
    assert "system: You are terse [really]." in resumed.out and "β = 0.7" in resumed.out  # kept from the log
    shown = json.loads(cli("logs", "show", str(conversation["id"]), "--json").out)
    assert [m["role"] for m in shown["messages"]] == ["system", "user", "assistant", "user", "assistant"]


def test_compare_prints_each_answer_once(cli, monkeypatch, tiny_gguf):
    with Store.open() as store:
        profile = store.create_profile("me")
        store.add_pairs(profile, [Pair("hi", "Hello.", "HELLO!!!"), Pair("bye", "Bye.", "BYE!!!")])
        for attribute in store.profile_attributes(profile)[3:]:  # three attributes score quickly
            store.set_attribute_enabled(profile, attribute.name, False)
    result = chat(cli, monkeypatch, ["hello", "/compare", "/prefer 2", "/bye"], "--llm", str(tiny_gguf), "--profile", "me", "--max-tokens", "5", "--seed", "3")
    assert result.code == 0, result.err
    assert result.out.count("1 plain>") == 1 and result.out.count("2 drift>") == 1
    plain = result.out.split("1 plain> ", 1)[1].split("\n", 1)[0]
    assert plain and result.out.count(plain) <= 2  # streamed once (the first answer may match it)
    assert "stored pair #3 in 'me' (3 pairs now); refitting in the background" in result.out
    with Store.open() as store:  # /bye right after /prefer: the pair is kept, whether or not the refit finished
        assert store.count_pairs(store.get_profile("me")) == 3


def test_unknown_resume_id_and_the_wrong_profile(cli, monkeypatch, tiny_gguf):
    result = chat(cli, monkeypatch, [], "--llm", str(tiny_gguf), "--resume", "999")
    assert result.code == 1 and "no conversation #999" in result.err


def test_generate_is_logged_and_reports_decoding_speed(cli, tiny_gguf):
    result = cli("generate", "--llm", str(tiny_gguf), "--max-tokens", "6", "--seed", "2", "--json", "what is tea")
    data = json.loads(result.out)
    assert data["prefill_seconds"] > 0
    assert data["tokens"] < 2 or data["tokens_per_second"] > 0
    shown = json.loads(cli("logs", "show", str(data["conversation"]), "--json").out)
    assert shown["meta"]["command"] == "generate"
    assert [(m["role"], m["content"]) for m in shown["messages"]] == [("user", "what is tea"), ("assistant", data["text"])]
    listed = json.loads(cli("logs", "--json", "-n", "1").out)
    assert listed[0]["id"] == data["conversation"]


def test_line_editing_recalls_history_with_the_up_key(isolated_home):
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from drift_local.cli.chat_repl import history_path, line_reader

    with create_pipe_input() as pipe:
        read = line_reader(input=pipe, output=DummyOutput())
        pipe.send_text("how are you\r")
        assert read() == "how are you"
        pipe.send_text("\x1b[A\r")  # Up, Enter: the line before again
        assert read() == "how are you"
    assert "how are you" in history_path().read_text()
