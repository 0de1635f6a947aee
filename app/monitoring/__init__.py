"""Monitoring room, the operators' domain: probe agents, the exporter, the alert webhook, incidents, the live board.

Module map: board (site states, thresholds, the board, a link's page), at_risk (meetings at risk), incidents
(webhook ingest, acknowledgement, the incident lists), exporter (the state exporter's work), agent/ (the probe
agent's work), exposition (Prometheus text rendering and serving, shared by agent and exporter), commands (the
`vcops probe` and `vcops exporter` console commands), routes/api/schemas (the pages and the JSON API), charts.
"""
