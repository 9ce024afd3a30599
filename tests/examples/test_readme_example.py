# The example test shown in README.md ("Testing your bot with pytest"); a test
# below checks that the README shows this file's example exactly.
from graphcomms.testing import tone_wav

CALLS = "/v1.0/communications/calls"
CALL = {
    "targets": [{"identity": {"user": {"id": "alice"}}}],
    "requestedModalities": ["audio"],
    "mediaConfig": {"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
}


def test_a_key_press_stops_the_menu(graphcomms_server, webhook_receiver, prompt_server):
    server, bot = graphcomms_server, webhook_receiver
    menu = prompt_server.add("menu.wav", tone_wav(20_000))  # a 20 s menu prompt

    # your bot would do this part; here the test plays the bot
    created = server.http.post(CALLS, json={**CALL, "callbackUri": bot.url})
    call_id = created.json()["id"]
    server.advance(1_000)  # the simulated callee answers
    bot.call_state(call_id, "established")
    server.http.post(f"{CALLS}/{call_id}/subscribeToTone", json={})
    prompt = {"@odata.type": "#microsoft.graph.mediaPrompt", "mediaInfo": {"uri": menu}}
    play = server.http.post(f"{CALLS}/{call_id}/playPrompt", json={"prompts": [prompt]})

    server.caller(call_id).press("1")  # real DTMF audio, found in-band
    server.advance(300)
    assert bot.tones(call_id, at_least=1)[0].tone == "tone1"
    server.http.post(f"{CALLS}/{call_id}/cancelMediaProcessing", json={})

    ended = bot.operation_ended(play.json()["id"])
    assert (ended["status"], ended["resultInfo"]["subcode"]) == ("failed", 8508)
    assert server.now_ms < 20_000  # minutes of call flow take milliseconds


def test_readme_shows_this_example() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    source = Path(__file__).read_text()
    example = source.split("\n\n\ndef test_readme_shows_this_example")[0]
    example = example.split("\n", 2)[2]  # without the two comment lines
    assert example.strip() in readme
