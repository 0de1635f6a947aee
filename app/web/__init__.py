"""The web layer every domain's pages and API share: the request cycle and its one commit point, the error
format, the access rule each view declares, the API blueprint, pagination, shared schemas, local time and form
helpers, /healthz and the web app's own /metrics.

It imports no domain: the factory (app/__init__.py) hands it the blueprints, and app.auth checks the access rules."""
