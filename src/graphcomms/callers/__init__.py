"""Where audio meets a caller: scripted simulated callers (WebRTC and SIP later).

A caller endpoint is anything with ``next_frame()`` (the caller's audio for
this 20 ms tick, or None for silence), ``hear(frame)`` (the bot's audio for
this tick) and ``hung_up``. The media plane drives it once per tick.
"""

from graphcomms.callers.simulated import CallerAction, SimulatedCaller

__all__ = ["CallerAction", "SimulatedCaller"]
