"""What many test packages share: namespaced test hosts and labs, the browser, job runs, seeded provinces."""
