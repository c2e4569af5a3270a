"""``saga dashboard``: the web interface, a web app over the optimizer's public gRPC API and the object
store with no state of its own.

``config`` holds what the server is started with and the one place that decides who may act
(``Access``) and how the optimizer is reached (``connect``); ``backend`` reads studies and runs the
actions; ``analysis`` turns a study into the page's JSON, reusing the report's computations;
``importance`` ranks parameters (scikit-learn); ``live`` relays WatchStudy as server-sent events;
``jobs`` runs exports in a separate process; ``app`` is the ASGI app and ``server`` runs it.
The page (``static/``) draws with ECharts, vendored from npm (``static/vendor/``, see ``vendor.json``).
"""
