"""The LightSearch job service: REST API, SQL persistence, a job queue run on Ray.

Layering (DESIGN.md lesson 10): ``api/routes`` -> ``crud`` -> ``models``; pydantic schemas
in ``schemas``; domain errors in ``core.errors`` translated to HTTP in one handler. The API
process never imports torch or Ray: the worker (``service.worker``) runs the search loop.
"""
