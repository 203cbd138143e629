"""``arl-run dashboard``: a local web page of a store's runs, updating while they go.

:mod:`arl.dashboard.data` reads the store (read-only, a little at a time: what a run
stored since the last request, :mod:`arl.dashboard.follow`);
:mod:`arl.dashboard.app` serves the page and its JSON API with Starlette and uvicorn.
The page itself (``static/``) is plain HTML, CSS and JavaScript, nothing fetched from
elsewhere: the machine running it may have no network.
"""
