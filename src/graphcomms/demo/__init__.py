"""``graphcomms demo``: a whole IVR call, with the service, a bot and a caller.

``run_demo`` plays it and returns the timeline as data (``Event`` objects);
``main`` is what the command line runs.
"""

from graphcomms.demo.run import DemoResult, main, run_demo
from graphcomms.demo.timeline import Event, Timeline

__all__ = ["DemoResult", "Event", "Timeline", "main", "run_demo"]
