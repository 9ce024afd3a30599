"""The HTTP surface: Graph's calling API, the emulator's controls, recordings.

``create_app(runtime)`` in ``app`` builds it. ``calls`` serves
``/v1.0`` and ``/beta`` ``/communications/calls``, ``emulator`` serves
``/_sim``, ``recordings`` serves ``recordingLocation``; ``http`` holds what
they share. Routes parse bodies with ``graph.requests``, call the engine and
answer with ``graph.render``; every failure leaves as Graph's error envelope.
"""
