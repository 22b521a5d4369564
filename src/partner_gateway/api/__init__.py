"""The partner HTTP API: the ASGI entry point, auth, problem details, one module per resource.

It knows channels only through the registry (channels/registry.py) and providers only through
the webhook routes they declare.
"""
