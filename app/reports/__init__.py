"""Reports room: the figures the province's plan is judged by, for a month or any period and a subtree — meetings
(meetings.py), savings with their assumptions (savings.py, travel.py), the network (network.py) — put together in
one Report (report.py), written as CSV, XLSX and PDF (exports.py), shown on the page and the API (routes.py,
api.py) and kept and mailed every month (monthly.py). The highest domain: it may read every other one, and
nothing but the factory imports it."""
