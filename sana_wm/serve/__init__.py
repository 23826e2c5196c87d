"""``sana-wm serve``: a live world in the browser (FastAPI + uvicorn, one page, a JSON WebSocket protocol).

Modules: :mod:`~sana_wm.serve.controls` (keys and camera messages → poses), :mod:`~sana_wm.serve.protocol`
(client messages, checked), :mod:`~sana_wm.serve.engine` (the model), :mod:`~sana_wm.serve.session` (one
session's chunks, on the worker thread), :mod:`~sana_wm.serve.scheduler` (one session per device, a
line for the others), :mod:`~sana_wm.serve.app` (routes and the token guard), :mod:`~sana_wm.serve.server`
(what the CLI runs).
"""
