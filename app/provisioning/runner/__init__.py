"""Runs a job's playbook through ansible-runner on a task-queue worker, and ends the runs whose worker died.

The room's modules: run (run_job, the "jobs.run" outbox handler: one run from start to end), workdir (the
run's private data directory and its inventory), settings (VCOps' Ansible settings and environment), hostkeys
(pinned host keys as ssh's KnownHostsCommand), targets (which hosts a run works on), scrub (secrets kept out
of events and artifacts), events (the live event writer), locks (one job at a time per host), processes (a
run's processes, found and ended), files (0600 files of a run), reaper (runs and claims whose worker died).
"""
