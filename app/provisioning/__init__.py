"""Provisioning: job templates, jobs run through ansible-runner, credentials kept encrypted."""
