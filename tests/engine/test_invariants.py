"""Random IVR sessions keep every engine rule of design.md (hypothesis).

Rules: play, record (with or without barge-in), cancel (all or not), send
tones, caller keys, time passing and hang-ups, in any order. After each step
the invariants below must hold.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from graphcomms.callers import CallerAction
from graphcomms.engine.operation import ApiVersion, PromptSource, RecordSettings

from .conftest import make_harness

V1 = ApiVersion.V1
URIS = [
    "https://prompts.example.test/beep.wav",
    "https://prompts.example.test/p3200.wav",
    "https://prompts.example.test/missing.wav",
]


class IvrSession(RuleBasedStateMachine):
    """One call driven at random, checked after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.h = make_harness(Path(tempfile.mkdtemp()))
        self.call = self.loop.run_until_complete(self.h.established_call())
        self.ops: dict[str, object] = {}
        self.ended = False

    def teardown(self) -> None:
        self.loop.close()

    def _settle(self) -> None:
        for _ in range(3):
            self.loop.run_until_complete(asyncio.sleep(0))

    def _run(self, fn, *args, **kwargs):
        async def inside():
            return fn(*args, **kwargs)

        return self.loop.run_until_complete(inside())

    @precondition(lambda self: not self.ended)
    @rule(uri=st.sampled_from(URIS))
    def play(self, uri: str) -> None:
        op = self._run(
            self.h.engine.play_prompt,
            self.call.id,
            (PromptSource(uri),),
            client_context=f"p{len(self.ops)}",
            loop=False,
            api_version=V1,
        )
        self.ops[op.id] = op

    @precondition(lambda self: not self.ended)
    @rule(barge=st.booleans(), stop=st.booleans())
    def record(self, barge: bool, stop: bool) -> None:
        self._settle()
        running = self.h.engine._live[self.call.id].queue.pending()
        op = self._run(
            self.h.engine.record_response,
            self.call.id,
            RecordSettings(
                barge_in_allowed=barge,
                stop_tones=("#",) if stop else (),
                max_record_duration_s=2,
                initial_silence_timeout_s=1,
            ),
            client_context=f"r{len(self.ops)}",
            api_version=V1,
        )
        self.ops[op.id] = op
        if barge:
            # barge-in drops everything that was pending, at once
            assert all(o.status == "failed" for o in running)
            assert op.status == "running"

    @precondition(lambda self: not self.ended)
    @rule(all_operations=st.booleans())
    def cancel(self, all_operations: bool) -> None:
        # let prompt loads that already finished start or fail their operation
        self._settle()
        queue = self.h.engine._live[self.call.id].queue
        running, waiting = queue.running, list(queue.waiting)
        before = len(self.h.notifier.ops())
        op = self._run(
            self.h.engine.cancel_media_processing,
            self.call.id,
            all_operations=all_operations,
            client_context="cancel",
            api_version=V1,
        )
        assert op.status == "completed"
        stopped = ([running] if running else []) + (waiting if all_operations else [])
        new = self.h.notifier.ops()[before:]
        queued_ids = [e.op_id for e in new if e.op_kind != "sendDtmfTones"]
        # the running one first, then the queued ones in order
        assert queued_ids == [o.id for o in stopped]
        if not all_operations and waiting:
            assert queue.running is waiting[0]

    @precondition(lambda self: not self.ended)
    @rule(keys=st.text(alphabet="0123456789*#", min_size=1, max_size=3))
    def press(self, keys: str) -> None:
        self._run(
            self.h.engine.caller_action, self.call.id, CallerAction("dtmf", keys=keys)
        )

    @precondition(lambda self: not self.ended)
    @rule()
    def send_tones(self) -> None:
        op = self._run(
            self.h.engine.send_dtmf_tones,
            self.call.id,
            ("tone1", "tone2"),
            delay_between_tones_ms=100,
            client_context="dtmf",
            api_version=V1,
        )
        self.ops[op.id] = op

    @precondition(lambda self: not self.ended)
    @rule()
    def subscribe(self) -> None:
        self._run(
            self.h.engine.subscribe_to_tone,
            self.call.id,
            client_context="t",
            api_version=V1,
        )

    @rule(ms=st.sampled_from([20, 100, 400, 1500, 4000]))
    def time_passes(self, ms: int) -> None:
        self.loop.run_until_complete(self.h.advance(ms))

    @precondition(lambda self: not self.ended)
    @rule(by_bot=st.booleans())
    def hang_up(self, by_bot: bool) -> None:
        if by_bot:
            self._run(self.h.engine.hang_up, self.call.id)
        else:
            self._run(self.h.engine.caller_action, self.call.id, CallerAction("hangup"))
            # the hang-up comes after whatever keys the caller still has to press
            for _ in range(100):
                if self.call.state.value == "terminated":
                    break
                self.loop.run_until_complete(self.h.advance(100))
        self.ended = True
        events = self.h.notifier.events
        last_call_event = max(
            i
            for i, e in enumerate(events)
            if e.kind == "call" and e.change_type == "deleted"
        )
        # every operation ended, and was notified, before the call's deleted
        assert all(o.status in ("completed", "failed") for o in self.ops.values())
        assert all(e.kind != "operation" for e in events[last_call_event + 1 :])

    @invariant()
    def one_terminal_notification_per_operation(self) -> None:
        ids = [e.op_id for e in self.h.notifier.ops()]
        assert len(ids) == len(set(ids))
        for op in self.ops.values():
            assert (op.id in ids) == (op.status in ("completed", "failed"))

    @invariant()
    def queue_runs_one_at_a_time_in_order(self) -> None:
        live = self.h.engine._live.get(self.call.id)
        if live is None:
            return
        queue = live.queue
        if queue.running is not None:
            assert queue.running.status == "running"
        else:
            assert not queue.waiting
        assert all(o.status == "notStarted" for o in queue.waiting)
        created = [o.created_ms for o in queue.waiting]
        assert created == sorted(created)

    @invariant()
    def tone_sequence_counts_from_one(self) -> None:
        sequences = [e.sequence for e in self.h.notifier.tones()]
        assert sequences == list(range(1, len(sequences) + 1))


IvrSession.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIvrSession = IvrSession.TestCase
