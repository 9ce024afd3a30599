"""The engine: calls, the IVR queue, operations and tones, as pure asyncio logic.

The engine knows nothing of HTTP or JSON. It works on ``Call`` and
``Operation`` objects, drives media through ``MediaPort`` and reports what
happened as events to a ``Notifier``; the ``graph`` package renders those.
"""
