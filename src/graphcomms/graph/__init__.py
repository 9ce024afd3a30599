"""Graph wire types: request bodies, rendered resources, notifications, errors.

Everything here speaks Graph's own vocabulary (camelCase, ``@odata.type``,
"operationCanceled") so that nothing else has to. ``requests`` validates the
bodies of the calling actions and turns them into engine values, ``render``
turns engine objects back into the v1.0 or beta wire form, and ``errors``
builds Graph's error envelope.
"""
